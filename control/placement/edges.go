package placement

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/egress"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// Routes mounts the edge-facing routes under /internal/v1.
func (s *Service) Routes(r fiber.Router) {
	g := r.Group("/edges", s.requireEdgeToken)
	g.Post("/register", s.register)
	g.Post("/heartbeat", s.heartbeat)
	g.Post("/events", s.events)
	g.Post("/stats", s.stats)
	r.Post("/rooms/attach", s.requireEdgeToken, s.attach)
	r.Post("/rooms/seat", s.requireEdgeToken, s.seat)
	r.Post("/edges/status", s.localStatusRoute) // a follower's EdgeStatus asks the leader (status.go)
}

func (s *Service) requireEdgeToken(c *fiber.Ctx) error {
	if api.HasClusterToken(c, s.cfg.ClusterToken) {
		return c.Next()
	}
	if err := (api.BearerToken{Want: s.cfg.EdgeToken,
		Missing: "edge token required (Authorization: Bearer <--edge-token>)",
		Wrong:   "wrong edge token: the edge's --edge-token must be the control plane's"}).Check(c); err != nil {
		return err
	}
	return c.Next()
}

func decode(c *fiber.Ctx, v any) error {
	if err := json.Unmarshal(c.Body(), v); err != nil {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "malformed JSON: " + err.Error()}
	}
	return nil
}

func (s *Service) register(c *fiber.Ctx) error {
	received := s.cfg.Now().UTC() // with reply.Now: the edge measures its clock
	var req edgeapi.Register
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.EdgeID == "" || req.Region == "" || req.SignalURL == "" {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "register needs edgeId, region and signalUrl"}
	}
	if !s.cfg.Catalog.Has(req.Region) {
		// A typo would silently create a region no pin names and no joiner
		// is near: refuse it.
		return &api.Error{Status: fiber.StatusBadRequest, Message: fmt.Sprintf("region %q is not known to the control plane; use a built-in region or define it on every control node with --define-region", req.Region)}
	}
	if len(req.PublicKey) != 0 && len(req.PublicKey) != ed25519.PublicKeySize {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "publicKey must be an Ed25519 public key"}
	}
	sec, err := s.cfg.Secrets()
	if err != nil {
		return &api.Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not ready", RetryAfter: 1}
	}
	now := s.cfg.Now().UTC()
	// Since when the participants recorded on it may be gone, should this
	// be a new process: since its mark-down, or now.
	since := now
	s.node.FSM().Read(func(st *state.Store) {
		if old, ok := st.Edge(req.EdgeID); ok && !old.Up && old.ChangedAt.Before(now) {
			since = old.ChangedAt.UTC()
		}
	})
	e := state.Edge{ID: req.EdgeID, Region: req.Region, SignalURL: req.SignalURL, InternalURL: req.InternalURL, TURNURLs: req.TURNURLs,
		STUNURLs: req.STUNURLs, Capacity: req.Capacity, Latitude: req.Latitude, Longitude: req.Longitude, Version: req.Version,
		GossipAddr: req.GossipAddr, PublicKey: req.PublicKey, Draining: req.Draining, RegisteredAt: now, ChangedAt: now}
	if _, _, err := s.node.Apply(c.UserContext(), state.CmdUpsertEdge, state.UpsertEdge{Edge: e}); err != nil {
		return err
	}
	hb := edgeapi.Heartbeat{EdgeID: req.EdgeID, Load: req.Load, Draining: req.Draining}
	s.noteHeartbeat(hb)
	s.forwardToLeader(c, "/internal/v1/edges/heartbeat", hb)
	s.log.Info("edge registered", "edge", req.EdgeID, "region", req.Region, "signal", req.SignalURL, "gossip", req.GossipAddr)
	reply := edgeapi.RegisterReply{TicketPublicKey: sec.TicketPub, TURNSecret: sec.TURNSecret, HeartbeatEvery: s.cfg.HeartbeatEvery.String(),
		Missed: s.missed(req.EdgeID, req.Rooms), RecordedSince: since, RejoinGrace: s.cfg.RejoinGrace.String()}
	s.node.FSM().Read(func(st *state.Store) {
		for _, p := range st.ActiveOnEdges(func(id string) bool { return id == req.EdgeID }) {
			reply.Recorded = append(reply.Recorded, edgeapi.RecordedParticipant{RoomID: p.RoomID, ParticipantID: p.ParticipantID})
		}
		for _, o := range st.Edges() {
			if o.ID != req.EdgeID && o.Region == req.Region && o.Up && o.GossipAddr != "" {
				reply.GossipSeeds = append(reply.GossipSeeds, o.GossipAddr)
			}
		}
	})
	reply.Received, reply.Now = received, s.cfg.Now().UTC()
	return c.JSON(reply)
}

func (s *Service) noteHeartbeat(hb edgeapi.Heartbeat) {
	s.mu.Lock()
	s.live[hb.EdgeID] = &liveEdge{load: hb.Load, seen: s.cfg.Now(), pool: hb.Pool, rooms: hb.Rooms, draining: hb.Draining, clockMs: hb.ClockOffsetMs}
	s.mu.Unlock()
}

// forwardToLeader copies liveness to the leader, whose loop decides when an
// edge is down; best effort (the next heartbeat repairs a lost one).
func (s *Service) forwardToLeader(c *fiber.Ctx, path string, body any) {
	if s.node.IsLeader() || c.Get(cluster.ForwardedHeader) != "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out json.RawMessage
	_ = s.node.ForwardHTTP(ctx, path, body, &out)
}

func (s *Service) heartbeat(c *fiber.Ctx) error {
	received := s.cfg.Now().UTC() // with reply.Now: the edge measures its clock
	var hb edgeapi.Heartbeat
	if err := decode(c, &hb); err != nil {
		return err
	}
	var known, up, draining bool
	s.node.FSM().Read(func(st *state.Store) {
		e, ok := st.Edge(hb.EdgeID)
		known, up = ok, ok && e.Up
		draining = ok && e.Draining
	})
	s.noteHeartbeat(hb)
	s.forwardToLeader(c, "/internal/v1/edges/heartbeat", hb)
	if known && up && hb.Draining != draining && c.Get(cluster.ForwardedHeader) == "" {
		if _, _, err := s.node.Apply(c.UserContext(), state.CmdSetEdgeDraining, state.SetEdgeDraining{ID: hb.EdgeID, Draining: hb.Draining, At: s.cfg.Now().UTC()}); err != nil {
			s.log.Warn("placement: recording drain state failed", "edge", hb.EdgeID, "err", err)
		} else {
			s.log.Info("edge drain state changed", "edge", hb.EdgeID, "draining", hb.Draining)
		}
	}
	if c.Get(cluster.ForwardedHeader) != "" {
		// A copy for the leader's liveness map: the edge gets its answer
		// from the node it talked to.
		s.leaderHeardFrom(hb)
		return c.JSON(edgeapi.HeartbeatReply{})
	}
	s.leaderHeardFrom(hb)
	// An unknown edge, or one marked down, must register again (which marks it up).
	reply := edgeapi.HeartbeatReply{Reregister: !known || !up}
	if !reply.Reregister {
		reply.Rooms = s.reconcile(hb.EdgeID, hb.Rooms)
		reply.Missed = s.missed(hb.EdgeID, hb.Rooms)
	}
	reply.Received, reply.Now = received, s.cfg.Now().UTC()
	return c.JSON(reply)
}

func (s *Service) events(c *fiber.Ctx) error {
	var batch edgeapi.EventBatch
	if err := decode(c, &batch); err != nil {
		return err
	}
	var region string
	s.node.FSM().Read(func(st *state.Store) {
		if e, ok := st.Edge(batch.EdgeID); ok {
			region = e.Region
		}
	})
	for _, ev := range batch.Events {
		evIDs, err := s.newIDs(4)
		if err != nil {
			return err
		}
		var cmd any
		var t state.CommandType
		switch ev.Kind {
		case edgeapi.EventParticipantJoined:
			t, cmd = state.CmdParticipantJoin, state.ParticipantJoin{EventID: ev.ID, RoomID: ev.RoomID, ParticipantID: ev.ParticipantID, Name: ev.Name,
				EdgeID: batch.EdgeID, Region: region, At: ev.At.UTC(), NewSessionID: evIDs[0], NewDocID: evIDs[1], IDs: evIDs[2:]}
		case edgeapi.EventParticipantLeft:
			t, cmd = state.CmdParticipantLeave, state.ParticipantLeave{EventID: ev.ID, RoomID: ev.RoomID, ParticipantID: ev.ParticipantID, Reason: ev.Reason,
				EdgeID: batch.EdgeID, At: ev.At.UTC(), IDs: evIDs[:3]}
		case edgeapi.EventCascadeLegUp, edgeapi.EventCascadeLegDown:
			h := state.AuditHop{Kind: state.HopCascade, EdgeID: batch.EdgeID, Region: region, PeerEdgeID: ev.PeerEdgeID, PeerRegion: ev.PeerRegion, First: ev.At.UTC(), Last: ev.At.UTC()}
			if ev.Kind == edgeapi.EventCascadeLegDown {
				h.First = time.Time{}
			}
			t, cmd = state.CmdRecordAudit, state.RecordAudit{RoomID: ev.RoomID, Hops: []state.AuditHop{h}}
		case edgeapi.EventTURNRelay:
			t, cmd = state.CmdRecordAudit, state.RecordAudit{RoomID: ev.RoomID, Hops: []state.AuditHop{{Kind: state.HopTURN, EdgeID: batch.EdgeID, Region: region,
				First: ev.At.UTC(), Last: ev.At.UTC()}}}
		case edgeapi.EventEgressStatus:
			if ev.Egress == nil {
				continue
			}
			t, cmd = state.CmdJobStatus, egress.StatusCommand(s.node.FSM(), s.ticketKey(), batch.EdgeID, *ev.Egress, ev.At, s.cfg.Now(), egress.DefaultConfig().WebhookURLTTL)
		default:
			s.log.Warn("unknown edge event", "kind", ev.Kind, "edge", batch.EdgeID)
			continue
		}
		if _, _, err := s.node.Apply(c.UserContext(), t, cmd); err != nil {
			var se *state.Error
			if errors.As(err, &se) {
				s.log.Warn("edge event rejected", "edge", batch.EdgeID, "kind", ev.Kind, "room", ev.RoomID, "err", err)
				continue
			}
			return err
		}
	}
	return c.JSON(fiber.Map{})
}

func (s *Service) stats(c *fiber.Ctx) error {
	var batch edgeapi.StatsBatch
	if err := decode(c, &batch); err != nil {
		return err
	}
	cmd := state.AppendStats{}
	for _, ps := range batch.Stats {
		sample := state.StatsSample{ParticipantID: ps.ParticipantID, Time: ps.Time.UTC(), Quality: ps.Quality}
		for _, ts := range ps.Send {
			fill(&sample.SendAudio, &sample.SendVideo, ts)
		}
		for _, ts := range ps.Recv {
			fill(&sample.RecvAudio, &sample.RecvVideo, ts)
		}
		cmd.Samples = append(cmd.Samples, state.RoomSample{RoomID: ps.RoomID, Sample: sample})
	}
	for _, l := range batch.Legs {
		cmd.Legs = append(cmd.Legs, state.RoomLegSample{RoomID: l.RoomID, Leg: state.LegSample{EdgeID: batch.EdgeID, PeerEdgeID: l.PeerEdgeID,
			Direction: l.Direction, Time: l.Time.UTC(), Bitrate: l.Bitrate, Packets: l.Packets, Bytes: l.Bytes, RTTMs: l.RTTMs, Tracks: l.Tracks}})
	}
	if len(cmd.Samples) == 0 && len(cmd.Legs) == 0 {
		return c.JSON(fiber.Map{})
	}
	if _, _, err := s.node.Apply(c.UserContext(), state.CmdAppendStats, cmd); err != nil {
		return err
	}
	return c.JSON(fiber.Map{})
}

// fill adds one track's figures to the kind's aggregate (bitrates and counts
// add up across tracks of a kind; delay figures keep the worst).
func fill(audio, video *state.MediaSample, ts edgeapi.TrackStats) {
	m := audio
	if ts.Kind == "video" {
		m = video
	}
	m.Bitrate += ts.Bitrate
	m.Packets += ts.Packets
	m.PacketsLost += ts.PacketsLost
	m.JitterMs = math.Max(m.JitterMs, ts.JitterMs)
	m.RTTMs = math.Max(m.RTTMs, ts.RTTMs)
	if ts.Height > m.Height {
		m.Width, m.Height, m.FPS = ts.Width, ts.Height, ts.FPS
	}
}

func (s *Service) post(ctx context.Context, url string, body any) error {
	req, err := edgeapi.NewRequest(ctx, url, s.cfg.EdgeToken, body)
	if err != nil {
		return err
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// ticketKey signs the download URLs in egress webhooks (nil before the
// cluster secrets exist: the URLs are left out).
func (s *Service) ticketKey() ed25519.PrivateKey {
	if sec, err := s.cfg.Secrets(); err == nil {
		return sec.TicketKey
	}
	return nil
}
