package edgenode

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/gossip"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ticket"
)

// Cascade exposes the relay-leg manager (tests, diagnostics).
func (n *Node) Cascade() *cascade.Manager { return n.casc }

// Gossip exposes the region pool (nil without gossip).
func (n *Node) Gossip() *gossip.Pool { return n.pool }

// Signal exposes the signaling server (tests).
func (n *Node) Signal() *signal.Server { return n.sig }

// ID is the edge id.
func (n *Node) ID() string { return n.cfg.EdgeID }

// heartbeat builds what the agent sends every HeartbeatEvery: load, the
// region pool's verdicts, the rooms served here with their known epochs.
func (n *Node) heartbeat() edgeapi.Heartbeat {
	hb := edgeapi.Heartbeat{Load: n.sfu.Load(), Draining: n.draining.Load()}
	if n.pool != nil {
		for _, m := range n.pool.Members() {
			if m.ID == n.cfg.EdgeID {
				continue
			}
			hb.Pool = append(hb.Pool, edgeapi.PoolMember{ID: m.ID, State: string(m.State), Load: m.Meta.Load, Draining: m.Meta.Draining})
		}
	}
	if n.sig != nil && n.casc != nil {
		// Rooms an egress job records here count as served: the control
		// plane keeps this edge in their placement (and its legs) while
		// the job runs, participants here or not.
		rooms := n.sig.Rooms()
		for _, id := range n.casc.HeldRooms() {
			if !slices.Contains(rooms, id) {
				rooms = append(rooms, id)
			}
		}
		hb.Rooms = n.casc.RoomEpochs(rooms)
		oldest := n.sig.Oldest()
		for i := range hb.Rooms {
			if t, ok := oldest[hb.Rooms[i].RoomID]; ok {
				hb.Rooms[i].Oldest = t.UnixMilli()
			}
		}
	}
	return hb
}

// applyMissed carries out the room closes and removals the control plane
// says this edge missed (their calls were lost): like any order, each
// spares whoever joined with a ticket issued after it, so repeats are
// no-ops.
func (n *Node) applyMissed(m edgeapi.Missed) {
	if n.sig == nil {
		return
	}
	for _, c := range m.Closed {
		if k := n.sig.CloseRoomAt(c.RoomID, c.Reason, c.At); k > 0 {
			n.log.Warn("closed a room whose close this edge had missed", "room", c.RoomID, "closedAt", c.At, "disconnected", k)
		}
	}
	for _, r := range m.Removed {
		if n.sig.RemoveParticipantAt(r.RoomID, r.ParticipantID, r.Reason, r.At) {
			n.log.Warn("removed a participant whose removal this edge had missed", "room", r.RoomID, "participant", r.ParticipantID, "removedAt", r.At)
		}
	}
}

// onHeartbeatReply applies room peers the control plane says changed. A
// room this edge still has participants in but is no longer recorded for
// (it was thought dead, or its reservation ran out before the join was
// reported) is claimed again, so its participants are not left alone.
func (n *Node) onHeartbeatReply(r edgeapi.HeartbeatReply) {
	n.applyMissed(r.Missed)
	for _, rp := range r.Rooms {
		if !rp.Member {
			if (n.sig.HasLocalMembers(rp.RoomID) || n.casc.Held(rp.RoomID)) && !n.draining.Load() {
				n.fetchPeers(rp.RoomID, true)
			}
			continue
		}
		n.casc.SetPeers(rp)
	}
}

// resync re-reports who is here after a re-registration. The control
// plane had declared this edge dead and failed its egress jobs: they are
// finished now (files kept, final statuses reported) rather than left
// running for a job record that has ended.
func (n *Node) resync() []edgeapi.Event {
	if n.egress != nil {
		for _, st := range n.egress.List() {
			if !st.State.Final() {
				n.log.Warn("stopping an egress job the control plane lost while this edge was unreachable", "job", st.ID, "room", st.RoomID)
				_, _ = n.egress.Stop(st.ID)
			}
		}
	}
	return n.sig.Admitted()
}

// defaultRejoinGrace stands in for a control plane that names no grace.
const defaultRejoinGrace = 15 * time.Second

// settleRecorded runs at this process's first registration. The
// participants the control plane records on this edge were admitted by a
// process that died (nothing else registers as this edge for the first
// time while they are recorded), and no one else will report them gone:
// the old process's sockets died with it, and the edge came back before,
// or soon after, the control plane's grace for a dead edge could close
// them. After the same grace, each one not admitted here again (moving
// elsewhere is the control plane's to see: it ignores a leave from an
// edge the participant has left) is reported left when it may have gone.
func (n *Node) settleRecorded(r edgeapi.RegisterReply) {
	if len(r.Recorded) == 0 {
		return
	}
	grace, err := time.ParseDuration(r.RejoinGrace)
	if err != nil || grace <= 0 {
		grace = defaultRejoinGrace
	}
	n.log.Info("participants recorded on this edge before this process started; those not back within the rejoin grace will be reported left",
		"participants", len(r.Recorded), "grace", grace)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-n.bgCtx.Done():
			return
		case <-t.C:
		}
		gone := 0
		for _, p := range r.Recorded {
			if n.sig.IsLocal(p.RoomID, p.ParticipantID) {
				continue
			}
			gone++
			n.agent.ParticipantLeft(edgeapi.Event{RoomID: p.RoomID, ParticipantID: p.ParticipantID,
				Reason: "edge-failed", At: r.RecordedSince})
		}
		n.log.Info("reported the participants of this edge's previous process that did not come back", "left", gone, "of", len(r.Recorded))
	}()
}

func (n *Node) legStats() []edgeapi.LegStats {
	now := n.agent.ControlNow().UTC()
	var out []edgeapi.LegStats
	for _, li := range n.casc.Legs() {
		out = append(out, edgeapi.LegStats{RoomID: li.RoomID, PeerEdgeID: li.PeerEdgeID, Direction: li.Direction, Time: now,
			Bitrate: li.Stats.Bitrate, Packets: li.Stats.Packets, Bytes: li.Stats.Bytes, RTTMs: li.Stats.RTTMs, Tracks: li.Stats.Tracks})
	}
	return out
}

// admit is asked by signaling before a ticket is admitted. A claim ticket
// (an alternate candidate) makes this edge part of the room's placement
// first, or is refused; otherwise the room's peers are fetched in the
// background when the ticket knows a newer placement than this edge.
func (n *Node) admit(roomID string, cl ticket.Claims) error {
	if cl.Claim && !n.casc.Member(roomID) {
		if n.draining.Load() {
			return errors.New("edge is draining")
		}
		ctx, cancel := context.WithTimeout(n.bgCtx, 5*time.Second)
		defer cancel()
		rp, err := n.agent.Attach(ctx, roomID, true)
		if err != nil {
			return fmt.Errorf("could not join the room's placement: %w", err)
		}
		if !rp.Member {
			return errors.New("the control plane did not place the room here")
		}
		n.casc.SetPeers(rp)
		n.casc.Prewarm(roomID, cl.Permissions.Subscribe, time.Second)
		return nil
	}
	if n.sig.HasLocalMembers(roomID) {
		if cl.Epoch > n.casc.Epoch(roomID) {
			n.fetchPeers(roomID, false)
		}
		return nil
	}
	// The room's first participant here: learn its peers and link with
	// them before `joined`, so the snapshot lists everyone (bounded; the
	// legs come up regardless).
	if cl.Epoch > n.casc.Epoch(roomID) {
		ctx, cancel := context.WithTimeout(n.bgCtx, 2*time.Second)
		rp, err := n.agent.Attach(ctx, roomID, false)
		cancel()
		if err != nil {
			n.fetchPeers(roomID, false)
			return nil
		}
		n.casc.SetPeers(rp)
	}
	n.casc.Prewarm(roomID, cl.Permissions.Subscribe, time.Second)
	return nil
}

// fetchPeers asks the control plane for a room's peers in the background
// (claim: add this edge to the placement first).
func (n *Node) fetchPeers(roomID string, claim bool) {
	if n.bgCtx.Err() != nil {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		for attempt := 0; attempt < 5; attempt++ {
			ctx, cancel := context.WithTimeout(n.bgCtx, 5*time.Second)
			rp, err := n.agent.Attach(ctx, roomID, claim)
			cancel()
			if err == nil {
				n.casc.SetPeers(rp)
				return
			}
			n.log.Debug("fetching room peers failed", "room", roomID, "claim", claim, "err", err)
			select {
			case <-n.bgCtx.Done():
				return
			case <-time.After(time.Duration(200<<attempt) * time.Millisecond):
			}
		}
	}()
}

func (n *Node) checkInternal(c *fiber.Ctx) error {
	want := "Bearer " + n.cfg.EdgeToken
	if subtle.ConstantTimeCompare([]byte(c.Get(fiber.HeaderAuthorization)), []byte(want)) != 1 {
		return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"code": "unauthorized", "message": "bad internal token"})
	}
	return c.Next()
}

// handlePeers: POST /internal/v1/rooms/peers, a placement change pushed by
// the control plane.
func (n *Node) handlePeers(c *fiber.Ctx) error {
	var rp edgeapi.RoomPeers
	if err := json.Unmarshal(c.Body(), &rp); err != nil || rp.RoomID == "" {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"code": "bad-request", "message": "a RoomPeers body with roomId is required"})
	}
	if rp.Member {
		n.casc.SetPeers(rp)
	}
	return c.JSON(fiber.Map{"epoch": n.casc.Epoch(rp.RoomID)})
}

// handleDrain: POST /internal/v1/drain {draining, deadlineSeconds}: starts
// a drain in the background (or cancels one) and answers at once.
func (n *Node) handleDrain(c *fiber.Ctx) error {
	var d edgeapi.Drain
	if len(c.Body()) > 0 {
		if err := json.Unmarshal(c.Body(), &d); err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"code": "bad-request", "message": "body must be {\"draining\": bool, \"deadlineSeconds\": int}"})
		}
	} else {
		d.Draining = true
	}
	if d.DeadlineSeconds < 0 || d.DeadlineSeconds > 24*3600 {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"code": "bad-request", "message": "deadlineSeconds must be between 0 and 86400"})
	}
	if !d.Draining {
		n.draining.Store(false)
		n.agent.Poke()
		return c.JSON(fiber.Map{"draining": false, "participants": n.sig.ParticipantCount()})
	}
	deadline := n.cfg.DrainTimeout
	if d.DeadlineSeconds > 0 {
		deadline = time.Duration(d.DeadlineSeconds) * time.Second
	}
	n.startDrain(deadline)
	return c.JSON(fiber.Map{"draining": true, "participants": n.sig.ParticipantCount(), "deadline": time.Now().Add(deadline).UTC().Format(time.RFC3339)})
}

// Drain stops new rooms coming here, asks every participant to move to
// another edge (the cascade keeps moved and not-yet-moved participants in
// touch) and returns when nobody is left or the deadline passed; then
// whoever remains is disconnected by Close. It reports how long it took
// and how many participants were still here at the end.
func (n *Node) Drain(ctx context.Context, deadline time.Duration) (time.Duration, int) {
	start := time.Now()
	done := n.startDrain(deadline)
	select {
	case <-done:
	case <-ctx.Done():
	}
	return time.Since(start), n.sig.ParticipantCount()
}

func (n *Node) startDrain(deadline time.Duration) <-chan struct{} {
	n.drainMu.Lock()
	defer n.drainMu.Unlock()
	if n.drained != nil && n.draining.Load() {
		return n.drained
	}
	n.draining.Store(true)
	done := make(chan struct{})
	n.drained = done
	n.agent.Poke() // the control plane stops placing rooms here at once
	n.log.Info("draining", "participants", n.sig.ParticipantCount(), "deadline", deadline)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		defer close(done)
		until := time.Now().Add(deadline)
		// Give the control plane a heartbeat to record the drain before
		// clients ask it where to go.
		select {
		case <-time.After(n.cfg.HeartbeatEvery + 200*time.Millisecond):
		case <-n.bgCtx.Done():
			return
		}
		ask := time.Time{}
		for n.draining.Load() && n.sig.ParticipantCount() > 0 && time.Now().Before(until) {
			if time.Since(ask) >= 5*time.Second {
				n.sig.AskToReconnect("edge-draining", until)
				ask = time.Now()
			}
			select {
			case <-n.bgCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		if left := n.sig.ParticipantCount(); left > 0 && n.draining.Load() && !time.Now().Before(until) {
			n.log.Warn("drain deadline reached; disconnecting the participants still here", "participants", left)
			n.sig.DisconnectAll()
		}
		if n.draining.Load() {
			// Nobody's media is here any more: recordings end now (files
			// stored, statuses reported) rather than when their rooms have
			// been empty for a while.
			ctx, cancel := context.WithDeadline(n.bgCtx, until)
			n.stopAllEgress(ctx)
			cancel()
		}
		n.log.Info("drain finished", "participantsLeft", n.sig.ParticipantCount())
	}()
	return done
}

// Draining reports whether the edge is draining.
func (n *Node) Draining() bool { return n.draining.Load() }

// watchPool sends a heartbeat as soon as the region's membership changes,
// so the control plane learns a peer's death from gossip within seconds.
//
// The pool also nudges on every load update (about N/2 a second in a pool
// of N); only a change of some member's state is worth a heartbeat.
func (n *Node) watchPool() {
	last := ""
	for {
		select {
		case <-n.bgCtx.Done():
			return
		case <-n.pool.Changes():
		}
		sig := ""
		for _, m := range n.pool.Members() {
			sig += m.ID + "=" + string(m.State) + ";"
		}
		if sig != last {
			last = sig
			n.agent.Poke()
		}
	}
}

// reportTURN records (for the session audit) that this edge's TURN server
// relays a participant, at most once per room and participant per minute.
func (n *Node) reportTURN(sig *signal.Server, pid string) {
	now := time.Now()
	for _, room := range sig.RoomsOf(pid) {
		key := room + "/" + pid
		n.turnMu.Lock()
		last, ok := n.turnReported[key]
		report := !ok || now.Sub(last) > time.Minute
		if report {
			n.turnReported[key] = now
		}
		for k, t := range n.turnReported {
			if now.Sub(t) > 10*time.Minute {
				delete(n.turnReported, k)
			}
		}
		n.turnMu.Unlock()
		if report {
			n.agent.Report(edgeapi.Event{Kind: edgeapi.EventTURNRelay, RoomID: room, ParticipantID: pid, At: now.UTC()})
		}
	}
}

// PublicURL is the edge's HTTP base URL.
func (n *Node) PublicURL() string { return n.cfg.PublicURL }
