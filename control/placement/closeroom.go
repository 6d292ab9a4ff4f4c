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

// closeAttempt bounds one close call to one edge: the API call that ended
// the session (or deactivated the room) waits for the first attempts, made
// to every edge at once, and no longer.
const closeAttempt = 2 * time.Second

// closeRetry is how an edge that did not confirm a close (stalled,
// restarting, cut off) is asked again, in the background, for up to
// closeRetryFor: its participants would otherwise stay in a meeting the
// control plane ended, unseen by the API.
var closeRetry = backoff.Policy{Min: 250 * time.Millisecond, Max: 5 * time.Second}

const closeRetryFor = 2 * time.Minute

// CloseRoom tells every up edge to disconnect the room's participants. The
// edges are called in parallel, each for at most closeAttempt; one that
// does not confirm is retried in the background (errors returned are the
// first attempts').
func (s *Service) CloseRoom(ctx context.Context, roomID, reason string) error {
	var edges []*state.Edge
	s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
	// The caller's request may end before the edges answer; the close
	// goes on regardless.
	ctx = context.WithoutCancel(ctx)
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
			actx, cancel := context.WithTimeout(ctx, closeAttempt)
			err := s.post(actx, e.InternalURL+"/internal/v1/rooms/close", body)
			cancel()
			if err == nil {
				return
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("edge %s: %w (retrying)", e.ID, err))
			mu.Unlock()
			s.retryClose(e.ID, body)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// retryClose asks edgeID to close a room until it confirms, the service
// stops, the edge is forgotten, or closeRetryFor has passed.
func (s *Service) retryClose(edgeID string, body edgeapi.CloseRoom) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		until := time.Now().Add(closeRetryFor)
		for attempt := 0; ; attempt++ {
			select {
			case <-s.stop:
				return
			case <-time.After(closeRetry.Ceiling(attempt)):
			}
			var url string
			s.node.FSM().Read(func(st *state.Store) {
				if e, ok := st.Edge(edgeID); ok {
					url = e.InternalURL
				}
			})
			if url == "" {
				return // the edge left the cluster
			}
			ctx, cancel := context.WithTimeout(context.Background(), closeAttempt)
			err := s.post(ctx, url+"/internal/v1/rooms/close", body)
			cancel()
			if err == nil {
				s.log.Info("placement: room closed on an edge after retrying", "room", body.RoomID, "edge", edgeID, "attempts", attempt+2)
				return
			}
			if time.Now().After(until) {
				s.log.Warn("placement: edge never confirmed a room's close", "room", body.RoomID, "edge", edgeID, "for", closeRetryFor, "err", err)
				return
			}
		}
	}()
}
