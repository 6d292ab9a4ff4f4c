package placement

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/backoff"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// Orders are calls the control plane must get through to an edge after a
// change it already made in the replicated state: disconnect a room whose
// session was ended or which was deactivated, disconnect a removed
// participant. Without them the people concerned stay in a meeting the
// API says is over for them.

// missed lists, for the rooms an edge reports, the closes and removals it
// may not have carried out (state.MissedOrders): heartbeat and registration
// replies carry them, so an order whose calls were lost (the edge was cut
// off, the control node retrying it died) still reaches the edge from
// whichever node it talks to next.
func (s *Service) missed(edgeID string, rooms []edgeapi.RoomEpoch) edgeapi.Missed {
	var out edgeapi.Missed
	now := s.cfg.Now().UTC()
	s.node.FSM().Read(func(st *state.Store) {
		for _, r := range rooms {
			if r.Oldest == 0 {
				continue // nobody connected: held for an egress job
			}
			m := st.MissedOrders(r.RoomID, edgeID, time.UnixMilli(r.Oldest))
			switch {
			case m.Disabled:
				// Nobody may be in a deactivated room, whenever they came.
				out.Closed = append(out.Closed, edgeapi.CloseRoom{RoomID: r.RoomID, Reason: "room-deactivated", At: now})
				continue
			case !m.ClosedAt.IsZero():
				out.Closed = append(out.Closed, edgeapi.CloseRoom{RoomID: r.RoomID, Reason: "room-closed", At: m.ClosedAt})
			}
			for _, x := range m.Removed {
				if x.At.After(m.ClosedAt) {
					out.Removed = append(out.Removed, edgeapi.RemoveParticipant{RoomID: r.RoomID, ParticipantID: x.ParticipantID, Reason: "removed", At: x.At})
				}
			}
		}
	})
	return out
}

// orderAttempt bounds one call of an order to one edge: the API call that
// made the change waits for the first attempt (to every edge at once for a
// room) and no longer.
const orderAttempt = 2 * time.Second

// orderRetry is how an edge that did not confirm an order (stopped,
// restarting, cut off) is asked again, in the background, for up to
// orderRetryFor. Each order says when the control plane made the change, so
// one arriving late spares whoever joined since with a ticket issued after it.
var orderRetry = backoff.Policy{Min: 250 * time.Millisecond, Max: 5 * time.Second}

const orderRetryFor = 2 * time.Minute

// CloseRoom tells every up edge to disconnect the room's participants, in
// parallel; an edge that does not confirm is asked again in the background
// (the errors returned are the first attempts').
func (s *Service) CloseRoom(ctx context.Context, roomID, reason string) error {
	var edges []*state.Edge
	s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
	body := edgeapi.CloseRoom{RoomID: roomID, Reason: reason, At: s.cfg.Now().UTC()}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, e := range edges {
		if !e.Up || e.InternalURL == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.order(ctx, e.ID, e.InternalURL, "/internal/v1/rooms/close", body); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RemoveParticipant tells the participant's edge to disconnect it; asked
// again in the background if it does not confirm.
func (s *Service) RemoveParticipant(ctx context.Context, edgeID, roomID, participantID, reason string) error {
	var e *state.Edge
	s.node.FSM().Read(func(st *state.Store) { e, _ = st.Edge(edgeID) })
	if e == nil || e.InternalURL == "" {
		return fmt.Errorf("edge %q unknown", edgeID)
	}
	return s.order(ctx, edgeID, e.InternalURL, "/internal/v1/rooms/remove-participant",
		edgeapi.RemoveParticipant{RoomID: roomID, ParticipantID: participantID, Reason: reason, At: s.cfg.Now().UTC()})
}

// order makes one bounded attempt to post body to the edge, and on failure
// keeps trying in the background (until it confirms, the service stops,
// the edge is forgotten, or orderRetryFor passes).
func (s *Service) order(ctx context.Context, edgeID, url, path string, body any) error {
	// The caller's request may end before the edge answers; the order
	// goes on regardless.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orderAttempt)
	err := s.post(actx, url+path, body)
	cancel()
	if err == nil {
		return nil
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		until := time.Now().Add(orderRetryFor)
		for attempt := 0; ; attempt++ {
			select {
			case <-s.stop:
				return
			case <-time.After(orderRetry.Ceiling(attempt)):
			}
			url := ""
			s.node.FSM().Read(func(st *state.Store) {
				if e, ok := st.Edge(edgeID); ok {
					url = e.InternalURL
				}
			})
			if url == "" {
				return // the edge left the cluster
			}
			ctx, cancel := context.WithTimeout(context.Background(), orderAttempt)
			err := s.post(ctx, url+path, body)
			cancel()
			if err == nil {
				s.log.Info("placement: edge confirmed an order after retrying", "edge", edgeID, "path", path, "attempts", attempt+2)
				return
			}
			if time.Now().After(until) {
				s.log.Warn("placement: edge never confirmed an order", "edge", edgeID, "path", path, "for", orderRetryFor, "err", err)
				return
			}
		}
	}()
	return fmt.Errorf("edge %s: %w (retrying)", edgeID, err)
}
