package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
)

// SessionAuth authenticates browser requests by their console session
// cookie (control/console implements it). The console's pages call the
// same /v2 and /admin/v1 routes as API clients: a request that carries no
// Authorization header but a session cookie is authenticated here, checked
// against the operator's role (auth.Allow), and its writes are audited.
type SessionAuth interface {
	// Session returns the operator behind the request's session cookie,
	// (nil, nil) when the request carries none, or an error (401 for an
	// invalid or expired session, 403 for a state-changing request without
	// the CSRF token or from another origin).
	Session(c *fiber.Ctx) (*auth.Operator, error)
}

// participantSSO reports whether rooms may require participants to sign
// in with the identity provider: the console is there and has one
// configured. Without it a requireSSO room could never be joined.
func (s *Server) participantSSO() bool {
	p, ok := s.sessions.(interface{ ParticipantSSO() bool })
	return ok && p.ParticipantSSO()
}

// WithSessionAuth accepts console sessions on the REST API.
func WithSessionAuth(sa SessionAuth) Option { return func(s *Server) { s.sessions = sa } }

// EdgeStatus is one edge as the operator console shows it.
type EdgeStatus struct {
	ID            string  `json:"id"`
	Region        string  `json:"region"`
	Up            bool    `json:"up"`
	Draining      bool    `json:"draining"`
	Capacity      int     `json:"capacity"`
	Participants  int     `json:"participants"`
	Tracks        int     `json:"tracks"`
	Rooms         int     `json:"rooms"`
	CPU           float64 `json:"cpu"`
	EgressBps     int64   `json:"egressBps"`
	Load          float64 `json:"load"` // participants / capacity
	LastHeartbeat *string `json:"lastHeartbeat"`
	// ClockOffsetMs is how far the edge's clock is ahead of the control
	// plane's (negative: behind), as the edge measured it from heartbeat
	// replies; absent until it has. Past a second the edge logs a warning.
	ClockOffsetMs *int64 `json:"clockOffsetMs,omitempty"`
	// LoadFrom says where the load comes from: "heartbeat" (the edge's own,
	// to this node), "leader" (the leader's view), "region-peer" (a region
	// peer's gossip), "heartbeat (stale)", or "" (nobody reported it: the
	// zero load is unknown, not idle).
	LoadFrom  string   `json:"loadFrom"`
	SignalURL string   `json:"signalUrl"`
	Version   string   `json:"version,omitempty"`
	TURNURLs  []string `json:"turnUrls,omitempty"`
}

// EdgeStatusService reports the edges and their latest known load.
type EdgeStatusService interface {
	EdgeStatus(ctx context.Context) []EdgeStatus
}

// WithEdgeStatus enables GET /admin/v1/edges.
func WithEdgeStatus(e EdgeStatusService) Option { return func(s *Server) { s.edgeStatus = e } }

const headerProject = "X-Meridian-Project"

// consolePrincipal turns an operator into the principal the /v2 handlers
// work with: the project (API key owner) the console has selected with
// the X-Meridian-Project header, through its oldest active key.
func (s *Server) consolePrincipal(c *fiber.Ctx, op *auth.Operator) (*auth.Principal, error) {
	project := c.Get(headerProject)
	var key *state.APIKey
	s.node.FSM().Read(func(st *state.Store) {
		for _, k := range st.APIKeys() {
			if k.RevokedAt == nil && (project == "" || k.UserID == project) {
				key = k
				return
			}
		}
	})
	if key == nil {
		if project == "" {
			return nil, &Error{Status: fiber.StatusConflict, Message: "there is no active API key yet: create one first (an admin can, under API keys)"}
		}
		return nil, &Error{Status: fiber.StatusNotFound, Message: fmt.Sprintf("project %q has no active API key", truncateForMsg(project))}
	}
	return &auth.Principal{Key: key, Via: "console", Operator: op, Claims: auth.Claims{APIKey: key.Key,
		Roles: []string{auth.RoleCrawler}, Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod}}}, nil
}

// consoleSession authenticates a cookie request. ok is false when the
// request has no session cookie (the caller tries its other credentials).
func (s *Server) consoleSession(c *fiber.Ctx) (op *auth.Operator, ok bool, err error) {
	if s.sessions == nil || len(c.Request().Header.Peek(fiber.HeaderAuthorization)) > 0 {
		return nil, false, nil
	}
	op, err = s.sessions.Session(c)
	if err != nil {
		return nil, true, err
	}
	if op == nil {
		return nil, false, nil
	}
	return op, true, nil
}

// authorizeConsole applies the role check and audits the request's outcome
// when it changes something (refusals included), after the handler ran.
func (s *Server) authorizeConsole(c *fiber.Ctx, op *auth.Operator, next func() error) error {
	err := auth.Allow(op.Role, c.Method(), c.Path())
	if err == nil {
		err = next()
	}
	if unsafeMethod(c.Method()) {
		s.Audit(c, state.AuditEntry{Actor: op.Actor(), Subject: op.Subject, Issuer: op.Issuer, Role: string(op.Role), Via: "console",
			Project: projectOf(c)}, err)
	}
	return err
}

func projectOf(c *fiber.Ctx) string {
	if p := principal(c); p != nil && p.Key != nil {
		return p.Key.UserID
	}
	return c.Get(headerProject)
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// Audit writes an entry for the request c to the replicated audit log:
// its action (method and route), target (path), outcome (status of err, or
// of the response) and where it came from. The write has its own context:
// the request's carries the client's Idempotency-Key, which must not be
// spent on the audit entry.
func (s *Server) Audit(c *fiber.Ctx, e state.AuditEntry, err error) {
	status := c.Response().StatusCode()
	if err != nil {
		status, _, _ = classify(err)
		if e.Detail == "" {
			_, e.Detail, _ = classify(err)
		}
	}
	e.At = s.cfg.Now().UTC()
	if e.Action == "" {
		e.Action = c.Method() + " " + routeOf(c)
	}
	if e.Target == "" {
		e.Target = c.Path()
	}
	e.Status = status
	e.IP = c.IP()
	e.UserAgent = truncate(string(c.Request().Header.UserAgent()), 256)
	e.RequestID = requestID(c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, aerr := s.node.Apply(ctx, state.CmdRecordConsoleAudit, state.RecordConsoleAudit{Entry: e}); aerr != nil {
		s.log.Error("audit log write failed", "action", e.Action, "actor", e.Actor, "err", aerr)
	}
}

// routeOf is the route pattern that matched (/v2/rooms/:roomId), or the
// path as the router saw it when none did (a refusal before routing).
func routeOf(c *fiber.Ctx) string {
	path := auth.RoutePath(c.Path())
	r := c.Route()
	// A refusal in a group's middleware sees the group's route (/v2):
	// only a route with as many segments as the path is the handler's.
	if r == nil || strings.Contains(r.Path, "*") || strings.Count(strings.TrimSuffix(r.Path, "/"), "/") != strings.Count(path, "/") {
		return path
	}
	return strings.TrimSuffix(r.Path, "/")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

type auditView struct {
	Seq       uint64 `json:"seq"`
	At        string `json:"at"`
	Actor     string `json:"actor"`
	Subject   string `json:"subject,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	Role      string `json:"role,omitempty"`
	Via       string `json:"via"`
	Action    string `json:"action"`
	Target    string `json:"target,omitempty"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	Project   string `json:"project,omitempty"`
}

// adminAudit is GET /admin/v1/audit: the audit log, newest first
// (filters actor, action prefix).
func (s *Server) adminAudit(c *fiber.Ctx) error {
	pg, err := parsePage(c, 50)
	if err != nil {
		return err
	}
	f := state.AuditFilter{Actor: c.Query("actor"), Action: c.Query("action")}
	var (
		items []*state.AuditEntry
		total int
	)
	if err := s.read(c, func(st *state.Store) { items, total = st.AuditPage(f, pg.window()) }); err != nil {
		return err
	}
	out := make([]auditView, len(items))
	for i, e := range items {
		out[i] = auditView{Seq: e.Seq, At: restTime(e.At), Actor: e.Actor, Subject: e.Subject, Issuer: e.Issuer, Role: e.Role, Via: e.Via,
			Action: e.Action, Target: e.Target, Status: e.Status, Detail: e.Detail, IP: e.IP, UserAgent: e.UserAgent, RequestID: e.RequestID, Project: e.Project}
	}
	return c.JSON(fiber.Map{"pageInfo": pageInfoOf(total, pg), "data": out})
}

// adminEdges is GET /admin/v1/edges: every registered edge with its region,
// status and latest known load, and where that load comes from (region
// filter; paginated).
func (s *Server) adminEdges(c *fiber.Ctx) error {
	pg, err := parsePage(c, 50)
	if err != nil {
		return err
	}
	var list []EdgeStatus
	if s.edgeStatus != nil {
		list = s.edgeStatus.EdgeStatus(c.UserContext())
	}
	if region := c.Query("region"); region != "" {
		kept := list[:0:0]
		for _, e := range list {
			if e.Region == region {
				kept = append(kept, e)
			}
		}
		list = kept
	}
	data, info := paginate(list, pg)
	return c.JSON(fiber.Map{"pageInfo": info, "data": data})
}

// adminProjects is GET /admin/v1/projects: the projects (owners of API
// keys) the console can switch between, with their active keys' names.
func (s *Server) adminProjects(c *fiber.Ctx) error {
	type project struct {
		UserID     string   `json:"userId"`
		KeyNames   []string `json:"keyNames"`
		ActiveKeys int      `json:"activeKeys"`
	}
	var out []project
	idx := map[string]int{}
	s.node.FSM().Read(func(st *state.Store) {
		for _, k := range st.APIKeys() {
			i, ok := idx[k.UserID]
			if !ok {
				idx[k.UserID] = len(out)
				out = append(out, project{UserID: k.UserID, KeyNames: []string{}})
				i = len(out) - 1
			}
			if k.RevokedAt == nil {
				out[i].ActiveKeys++
				if k.Name != "" {
					out[i].KeyNames = append(out[i].KeyNames, k.Name)
				}
			}
		}
	})
	pg, err := parsePage(c, 100)
	if err != nil {
		return err
	}
	data, info := paginate(out, pg)
	return c.JSON(fiber.Map{"pageInfo": info, "data": data})
}

// DecodeJSON decodes a request body with the API's rules and error
// messages (for routes mounted by other packages).
func DecodeJSON(c *fiber.Ctx, v any) error { return decodeJSON(c, v) }
