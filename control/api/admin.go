package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
)

func (s *Server) adminRoutes(r fiber.Router) {
	r.Post("/keys", s.adminCreateKey)
	r.Get("/keys", s.adminListKeys)
	r.Delete("/keys/:key", s.adminRevokeKey)
	r.Get("/cluster", s.adminCluster)
	r.Delete("/cluster/nodes/:id", s.adminRemoveNode)
	r.Get("/audit", s.adminAudit)
	r.Get("/edges", s.adminEdges)
	r.Get("/projects", s.adminProjects)
}

// adminCluster lists the Raft members (voters), the leader and their API
// addresses — what an operator checks before and after replacing a node.
func (s *Server) adminCluster(c *fiber.Ctx) error {
	servers, err := s.node.Servers()
	if err != nil {
		return err
	}
	leader := s.node.LeaderID()
	type member struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raftAddr"`
		HTTPAddr string `json:"httpAddr,omitempty"`
		Suffrage string `json:"suffrage"`
		Leader   bool   `json:"leader"`
	}
	out := make([]member, 0, len(servers))
	for _, sv := range servers {
		m := member{ID: string(sv.ID), RaftAddr: string(sv.Address), Suffrage: sv.Suffrage.String(), Leader: string(sv.ID) == leader}
		s.node.FSM().Read(func(st *state.Store) {
			if n, ok := st.Node(m.ID); ok {
				m.HTTPAddr = n.HTTPAddr
			}
		})
		out = append(out, m)
	}
	return c.JSON(fiber.Map{"leader": leader, "members": out})
}

// adminRemoveNode takes a control node out of the Raft configuration (a
// node being replaced under another id, or gone for good). Through a
// follower it is forwarded to the leader.
func (s *Server) adminRemoveNode(c *fiber.Ctx) error {
	id := c.Params("id")
	servers, err := s.node.Servers()
	if err != nil {
		return err
	}
	found := false
	for _, sv := range servers {
		found = found || string(sv.ID) == id
	}
	if !found {
		return notFound(fmt.Sprintf("control node %q is not a member", truncateForMsg(id)))
	}
	if id == s.node.LeaderID() {
		return &Error{Status: fiber.StatusConflict, Message: "that node is the leader: stop it (another node takes over) and remove it then"}
	}
	if !s.node.IsLeader() {
		var out struct{}
		if err := s.node.ForwardHTTP(c.UserContext(), "/internal/v1/cluster/remove", fiber.Map{"id": id}, &out); err != nil {
			return err
		}
	} else if err := s.node.RemoveServer(id); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"removed": id})
}

type keyView struct {
	APIKey    string           `json:"apiKey"`
	Secret    string           `json:"secret,omitempty"`
	Name      string           `json:"name,omitempty"`
	UserID    string           `json:"userId"`
	Pin       *state.PinPolicy `json:"pin,omitempty"`
	CreatedAt string           `json:"createdAt"`
	RevokedAt *string          `json:"revokedAt"`
}

func keyViewOf(k *state.APIKey, secret string) keyView {
	v := keyView{APIKey: k.Key, Secret: secret, Name: k.Name, UserID: k.UserID, CreatedAt: restTime(k.CreatedAt), RevokedAt: restTimePtr(k.RevokedAt)}
	if !k.Pin.Empty() {
		pin := k.Pin
		v.Pin = &pin
	}
	return v
}

// CreateKey creates (or, for an identical key+secret, returns) an API key.
func (s *Server) CreateKey(ctx context.Context, spec auth.NewKeySpec) (*state.APIKey, string, error) {
	if err := s.checkPin("pin", spec.Pin); err != nil {
		return nil, "", err
	}
	k, secret, err := auth.NewAPIKey(s.cfg.Rand, s.sealer, spec, s.cfg.Now())
	if err != nil {
		return nil, "", &Error{Status: fiber.StatusBadRequest, Message: err.Error()}
	}
	raw, _, err := s.node.Apply(ctx, state.CmdUpsertAPIKey, state.UpsertAPIKey{APIKey: *k})
	if err != nil {
		return nil, "", err
	}
	var stored state.APIKey
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, "", err
	}
	return &stored, secret, nil
}

func (s *Server) adminCreateKey(c *fiber.Ctx) error {
	var req struct {
		APIKey string           `json:"apiKey"`
		Secret string           `json:"secret"`
		Name   string           `json:"name"`
		UserID string           `json:"userId"`
		Pin    *state.PinPolicy `json:"pin"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	spec := auth.NewKeySpec{Key: req.APIKey, Secret: req.Secret, Name: req.Name, UserID: req.UserID}
	if req.Pin != nil {
		spec.Pin = *req.Pin
	}
	k, secret, err := s.CreateKey(c.UserContext(), spec)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(keyViewOf(k, secret))
}

func (s *Server) adminListKeys(c *fiber.Ctx) error {
	pg, err := parsePage(c, 100)
	if err != nil {
		return err
	}
	var keys []*state.APIKey
	if err := s.read(c, func(st *state.Store) { keys = st.APIKeys() }); err != nil {
		return err
	}
	out := make([]keyView, len(keys))
	for i, k := range keys {
		out[i] = keyViewOf(k, "")
	}
	data, info := paginate(out, pg)
	return c.JSON(fiber.Map{"pageInfo": info, "data": data})
}

func (s *Server) adminRevokeKey(c *fiber.Ctx) error {
	key := c.Params("key")
	raw, err := s.apply(c, state.CmdRevokeAPIKey, state.RevokeAPIKey{Key: key, At: s.cfg.Now().UTC()})
	if err != nil {
		return err
	}
	var k state.APIKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return fmt.Errorf("decode revoked key: %w", err)
	}
	return c.JSON(keyViewOf(&k, ""))
}
