// Package egress orchestrates recording, RTMP and HLS jobs from the control
// plane: it records each job in Raft, asks the edge that serves the room to
// run it (shared/edgeapi egress calls), turns the edge's status reports into
// replicated job changes (with their webhooks), fails the jobs of edges that
// are lost, and starts a room's autoStartConfig jobs when its session
// begins. The media work itself runs on the edge (edge/egress).
package egress

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/storage"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

// Config configures the service.
type Config struct {
	// EdgeToken authenticates calls to edges' internal routes.
	EdgeToken string
	// TicketKey signs download URLs (the edge checks them with the public
	// key it already has). Opened lazily: secrets appear after the first leader.
	TicketKey func() (ed25519.PrivateKey, error)
	// AllowedRegions resolves a room's pins to the regions its files may be
	// stored in (nil: anywhere).
	AllowedRegions func(room *state.Room) ([]string, error)
	// URLTTL is how long a download URL handed out by an API read is valid;
	// WebhookURLTTL the same for URLs sent in webhooks.
	URLTTL        time.Duration
	WebhookURLTTL time.Duration
	// CheckEvery is how often the leader looks for jobs of lost edges and
	// sessions to auto-start.
	CheckEvery      time.Duration
	HTTPClient      *http.Client
	TLSClientConfig *tls.Config
	Now             func() time.Time
	Rand            io.Reader
	Logger          *slog.Logger
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{URLTTL: time.Hour, WebhookURLTTL: 7 * 24 * time.Hour, CheckEvery: 500 * time.Millisecond}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.EdgeToken == "":
		return errors.New("egress: EdgeToken is required")
	case c.TicketKey == nil:
		return errors.New("egress: TicketKey is required")
	case c.URLTTL <= 0 || c.WebhookURLTTL <= 0 || c.CheckEvery <= 0:
		return errors.New("egress: URLTTL, WebhookURLTTL and CheckEvery must be positive")
	}
	return nil
}

// Service implements api.EgressService.
type Service struct {
	cfg  Config
	node *cluster.Node
	log  *slog.Logger
}

var _ api.EgressService = (*Service)(nil)

// New builds the service.
func New(cfg Config, node *cluster.Node) (*Service, error) {
	d := DefaultConfig()
	if cfg.URLTTL == 0 {
		cfg.URLTTL = d.URLTTL
	}
	if cfg.WebhookURLTTL == 0 {
		cfg.WebhookURLTTL = d.WebhookURLTTL
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = d.CheckEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		// Starting a job waits for the edge to have it running (ffmpeg up).
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
		if cfg.TLSClientConfig != nil {
			cfg.HTTPClient.Transport = tlsutil.NodeTransport(cfg.TLSClientConfig)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, node: node, log: cfg.Logger}, nil
}

// Errors the API maps to statuses.
var (
	errNoSession = func(room string) error {
		return &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("room %q has no live session (a job needs participants in the meeting)", room)}
	}
	errNoEdge = func(room string) error {
		return &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("no media edge serving room %q is reachable", room), RetryAfter: 2}
	}
)

// Start records a job and asks the edge serving the room to run it. job
// carries the caller's request (kind, project, room, options); spec the
// normalized edge spec without its id, session and regions.
func (s *Service) Start(ctx context.Context, room *state.Room, job state.Job, spec egressapi.Spec) (*state.Job, error) {
	var (
		ss   *state.Session
		edge *state.Edge
	)
	s.node.FSM().Read(func(st *state.Store) {
		ss, _ = st.OngoingSession(room.ID)
		edge = s.edgeFor(st, room, ss, job)
	})
	if job.Kind != egressapi.KindMerge {
		if ss == nil {
			return nil, errNoSession(room.RoomID)
		}
		job.SessionID = ss.ID
		if !anyActive(ss) {
			return nil, &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("the live session of room %q has no participants (it stays open for its autoCloseConfig); nothing to record", room.RoomID)}
		}
		if job.Kind == egressapi.KindParticipant || job.Kind == egressapi.KindTrack {
			if !activeIn(ss, job.ParticipantID) {
				return nil, &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("participant %q is not in the live session of room %q", job.ParticipantID, room.RoomID)}
			}
		}
	}
	if edge == nil {
		return nil, errNoEdge(room.RoomID)
	}
	var err error
	if job.ID == "" {
		if job.ID, err = s.newID(job.Kind); err != nil {
			return nil, err
		}
	}
	if s.cfg.AllowedRegions != nil {
		if spec.AllowedRegions, err = s.cfg.AllowedRegions(room); err != nil {
			return nil, err
		}
	}
	spec.ID, spec.Kind, spec.RoomID, spec.SessionID = job.ID, job.Kind, room.RoomID, job.SessionID
	if job.Kind == egressapi.KindHLS {
		var b [16]byte
		if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
			return nil, err
		}
		spec.HLS.Path = hex.EncodeToString(b[:])
		job.HLSPath = spec.HLS.Path
		base := EdgePublicURL(edge) + edgeapi.EgressHLSPrefix + spec.HLS.Path
		job.PlaybackURL, job.LivestreamURL = base+"/index.m3u8", base+"/live.m3u8"
	}
	if spec, err = spec.Normalize(); err != nil {
		return nil, fieldError(err)
	}
	now := s.cfg.Now().UTC()
	job.EdgeID, job.UserID, job.APIKey, job.RoomID = edge.ID, room.UserID, room.APIKey, room.RoomID
	job.CreatedAt, job.UpdatedAt = now, now
	raw, _, err := s.node.Apply(ctx, state.CmdCreateJob, state.CreateJob{Job: job})
	if err != nil {
		return nil, err
	}
	var created state.Job
	if json.Unmarshal(raw, &created) == nil && created.ID != "" && created.ID != job.ID {
		// A request repeated with its Idempotency-Key: the first one's job,
		// which its edge was already asked to run.
		s.node.FSM().Read(func(st *state.Store) {
			if cur, ok := st.JobByID(created.ID); ok {
				created = *cur
			}
		})
		return &created, nil
	}
	var st egressapi.Status
	status, err := s.call(ctx, edge, edgeapi.EgressStartPath, spec, &st)
	switch {
	case err == nil:
		return s.applyStatus(ctx, edge, st)
	case status >= 400 && status < 500 && status != http.StatusConflict:
		// The edge refused it: it never ran. Remove the record, answer its error.
		if _, _, aerr := s.node.Apply(context.WithoutCancel(ctx), state.CmdAbortJob, state.AbortJob{ID: job.ID}); aerr != nil {
			s.log.Warn("egress: removing a refused job failed", "job", job.ID, "err", aerr)
		}
		return nil, err
	default:
		// Unknown outcome (unreachable, 5xx, timeout): the job is failed with
		// the reason, and the edge is asked to stop it in case it runs.
		reason := "edge " + edge.ID + " did not start the job: " + err.Error()
		s.fail(context.WithoutCancel(ctx), []string{job.ID}, reason)
		go s.bestEffortStop(edge, job.ID)
		return nil, &api.Error{Status: http.StatusBadGateway, Message: reason}
	}
}

// edgeFor picks the edge that runs a job: for a merge, the edge that
// recorded its first source (local files live there); otherwise the room's
// home edge, or any edge its participants are on.
func (s *Service) edgeFor(st *state.Store, room *state.Room, ss *state.Session, job state.Job) *state.Edge {
	up := func(id string) *state.Edge {
		if e, ok := st.Edge(id); ok && e.Up && e.InternalURL != "" {
			return e
		}
		return nil
	}
	if job.Kind == egressapi.KindMerge {
		if job.EdgeID != "" {
			return up(job.EdgeID)
		}
		return nil
	}
	if p, ok := st.Placement(room.RoomID); ok {
		if e := up(p.Home); e != nil {
			return e
		}
		for _, re := range p.Edges {
			if e := up(re.EdgeID); e != nil {
				return e
			}
		}
	}
	if ss != nil {
		for _, p := range ss.Participants {
			if p.Active() {
				if e := up(p.EdgeID); e != nil {
					return e
				}
			}
		}
	}
	return nil
}

func anyActive(ss *state.Session) bool {
	for _, p := range ss.Participants {
		if p.Active() {
			return true
		}
	}
	return false
}

func activeIn(ss *state.Session, pid string) bool {
	for _, p := range ss.Participants {
		if p.ParticipantID == pid && p.Active() {
			return true
		}
	}
	return false
}

func (s *Service) newID(k egressapi.Kind) (string, error) {
	if k == egressapi.KindMerge {
		var b [16]byte
		if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
			return "", err
		}
		b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
		h := hex.EncodeToString(b[:])
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
	}
	out, err := ids.NewDocIDs(s.cfg.Rand, 1)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// Stop asks the job's edge to stop it.
func (s *Service) Stop(ctx context.Context, job *state.Job) (*state.Job, error) {
	if !job.Active() {
		return nil, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("%s %s has already ended (%s)", job.Kind.Noun(), job.ID, job.State)}
	}
	if job.State == egressapi.StateStopping {
		return nil, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("%s %s is already stopping", job.Kind.Noun(), job.ID)}
	}
	var edge *state.Edge
	s.node.FSM().Read(func(st *state.Store) {
		if e, ok := st.Edge(job.EdgeID); ok && e.Up {
			edge = e
		}
	})
	if edge == nil {
		return nil, &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("edge %s running %s %s is not reachable; the job fails when the edge is declared lost", job.EdgeID, job.Kind.Noun(), job.ID), RetryAfter: 2}
	}
	var st egressapi.Status
	status, err := s.call(ctx, edge, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: job.ID}, &st)
	switch {
	case err == nil:
		return s.applyStatus(ctx, edge, st)
	case status == http.StatusNotFound:
		// The edge no longer has it (restarted): it cannot finish.
		s.fail(ctx, []string{job.ID}, "edge "+edge.ID+" no longer runs the job")
		return nil, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("%s %s was lost by edge %s and is now failed", job.Kind.Noun(), job.ID, edge.ID)}
	case status == http.StatusConflict:
		// Ended on the edge already; its final status is on the way.
		return nil, &api.Error{Status: http.StatusConflict, Message: fmt.Sprintf("%s %s has already ended", job.Kind.Noun(), job.ID)}
	}
	return nil, err
}

// Delete removes what the job's edge keeps of an ended job — its HLS
// playlists and segments, and its stored files (local files live on the
// edge's disk, so only the edge can remove them) — before the record goes.
// A reachable edge that cannot do it fails the delete (503: nothing is
// changed and the client may retry; the edge's call is idempotent). An
// edge that is down or gone cannot be asked: its files stay where they are
// and the record is deleted anyway. Active jobs are left to the state
// machine, which refuses to delete them.
func (s *Service) Delete(ctx context.Context, job *state.Job) error {
	if job.Active() {
		return nil
	}
	var edge *state.Edge
	s.node.FSM().Read(func(st *state.Store) {
		if e, ok := st.Edge(job.EdgeID); ok && e.Up {
			edge = e
		}
	})
	if edge == nil {
		s.log.Warn("egress: deleting a job whose edge is down; its files stay on that edge", "job", job.ID, "edge", job.EdgeID)
		return nil
	}
	refs := make([]egressapi.FileRef, 0, len(job.Files))
	for _, f := range job.Files {
		refs = append(refs, egressapi.FileRef{Storage: f.Storage, Key: f.Key})
	}
	var out json.RawMessage
	status, err := s.call(ctx, edge, edgeapi.EgressDeletePath, edgeapi.EgressDelete{ID: job.ID, Files: refs}, &out)
	if err == nil {
		return nil
	}
	if status == 0 || status >= 500 {
		return &api.Error{Status: http.StatusServiceUnavailable, RetryAfter: 2,
			Message: fmt.Sprintf("edge %s could not remove the files of %s %s: %v", edge.ID, job.Kind.Noun(), job.ID, err)}
	}
	return err
}

// Capture asks the edge for a picture of an HLS job's frame; the edge also
// stores it and describes the stored file.
func (s *Service) Capture(ctx context.Context, job *state.Job, req edgeapi.EgressCapture) (*egressapi.File, string, error) {
	var edge *state.Edge
	s.node.FSM().Read(func(st *state.Store) {
		if e, ok := st.Edge(job.EdgeID); ok && e.Up {
			edge = e
		}
	})
	if edge == nil {
		return nil, "", &api.Error{Status: http.StatusServiceUnavailable, Message: "the edge running this HLS job is not reachable", RetryAfter: 2}
	}
	req.ID = job.ID
	resp, err := s.do(ctx, edge, edgeapi.EgressCapturePath, req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", edgeError(resp.StatusCode, body)
	}
	var f egressapi.File
	if err := json.Unmarshal([]byte(resp.Header.Get(edgeapi.EgressCaptureFileHeader)), &f); err != nil || f.Key == "" {
		// Not stored: answer with the picture's size only.
		f = egressapi.File{Size: int64(len(body))}
	}
	if f.Size == 0 {
		f.Size = int64(len(body))
	}
	return &f, resp.Header.Get("Content-Type"), nil
}

// FileURL returns a fresh signed download URL for one of a job's files
// ("" when it cannot be signed yet).
func (s *Service) FileURL(job *state.Job, f egressapi.File) string {
	key, err := s.cfg.TicketKey()
	if err != nil {
		return ""
	}
	var edge *state.Edge
	s.node.FSM().Read(func(st *state.Store) { edge, _ = st.Edge(job.EdgeID) })
	return signFile(key, edge, f, s.cfg.Now().Add(s.cfg.URLTTL))
}

func signFile(key ed25519.PrivateKey, edge *state.Edge, f egressapi.File, exp time.Time) string {
	if edge == nil || f.Key == "" {
		return ""
	}
	u, err := storage.SignURL(key, EdgePublicURL(edge)+edgeapi.EgressFilesPrefix+f.Storage, f.Storage, f.Key, exp)
	if err != nil {
		return ""
	}
	return u
}

// EdgePublicURL is the edge's public HTTP base, derived from its signaling
// URL (ws(s)://host/rtc).
func EdgePublicURL(e *state.Edge) string {
	u := strings.TrimSuffix(strings.TrimRight(e.SignalURL, "/"), "/rtc")
	switch {
	case strings.HasPrefix(u, "wss://"):
		u = "https://" + strings.TrimPrefix(u, "wss://")
	case strings.HasPrefix(u, "ws://"):
		u = "http://" + strings.TrimPrefix(u, "ws://")
	}
	return u
}

// StatusCommand turns an edge's status report into the replicated command,
// with the download URLs of its files signed for the webhooks.
func StatusCommand(fsm *state.FSM, key ed25519.PrivateKey, edgeID string, st egressapi.Status, at, now time.Time, ttl time.Duration) state.JobStatus {
	cmd := state.JobStatus{EdgeID: edgeID, Status: st, At: at.UTC()}
	if len(st.Files) == 0 || !st.State.Final() || len(key) == 0 {
		return cmd
	}
	var edge *state.Edge
	fsm.Read(func(s *state.Store) { edge, _ = s.Edge(edgeID) })
	for _, f := range st.Files {
		cmd.FileURLs = append(cmd.FileURLs, signFile(key, edge, f, now.Add(ttl)))
	}
	return cmd
}

func (s *Service) applyStatus(ctx context.Context, edge *state.Edge, st egressapi.Status) (*state.Job, error) {
	key, _ := s.cfg.TicketKey()
	now := s.cfg.Now()
	cmd := StatusCommand(s.node.FSM(), key, edge.ID, st, now, now, s.cfg.WebhookURLTTL)
	raw, _, err := s.node.Apply(context.WithoutCancel(ctx), state.CmdJobStatus, cmd)
	if err != nil {
		return nil, err
	}
	var j state.Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (s *Service) fail(ctx context.Context, ids []string, reason string) {
	if _, _, err := s.node.Apply(ctx, state.CmdFailJobs, state.FailJobs{IDs: ids, Reason: reason, At: s.cfg.Now().UTC()}); err != nil {
		s.log.Warn("egress: failing jobs", "jobs", ids, "reason", reason, "err", err)
	}
}

func (s *Service) bestEffortStop(edge *state.Edge, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st egressapi.Status
	_, _ = s.call(ctx, edge, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: id}, &st)
}

func (s *Service) do(ctx context.Context, edge *state.Edge, path string, body any) (*http.Response, error) {
	req, err := edgeapi.NewRequest(ctx, strings.TrimRight(edge.InternalURL, "/")+path, s.cfg.EdgeToken, body)
	if err != nil {
		return nil, err
	}
	return s.cfg.HTTPClient.Do(req)
}

// call posts body to an edge and decodes its JSON answer into out. On
// failure it returns the edge's status (0 when it did not answer) and an
// error the API can show.
func (s *Service) call(ctx context.Context, edge *state.Edge, path string, body, out any) (int, error) {
	resp, err := s.do(ctx, edge, path, body)
	if err != nil {
		return 0, fmt.Errorf("edge %s: %w", edge.ID, err)
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("edge %s: %w", edge.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, edgeError(resp.StatusCode, msg)
	}
	if err := json.Unmarshal(msg, out); err != nil {
		return 0, fmt.Errorf("edge %s: bad answer: %w", edge.ID, err)
	}
	return resp.StatusCode, nil
}

// edgeError turns an edge's EgressError into the API error with the status
// the contract says the REST API should answer.
func edgeError(status int, body []byte) error {
	var ee edgeapi.EgressError
	_ = json.Unmarshal(body, &ee)
	msg := ee.Message
	if msg == "" {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200]
		}
	}
	if ee.Field != "" && !strings.Contains(msg, ee.Field) {
		msg = fmt.Sprintf("field %q: %s", ee.Field, msg)
	}
	switch {
	case status == http.StatusBadRequest || status == http.StatusNotFound || status == http.StatusConflict:
	case status == http.StatusServiceUnavailable:
		return &api.Error{Status: status, Message: "edge: " + msg, RetryAfter: 2}
	default:
		status = http.StatusBadGateway
	}
	return &api.Error{Status: status, Message: msg}
}

func fieldError(err error) error {
	var fe *egressapi.FieldError
	if errors.As(err, &fe) {
		return &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("field %q %s", fe.Field, fe.Message)}
	}
	return &api.Error{Status: http.StatusBadRequest, Message: err.Error()}
}
