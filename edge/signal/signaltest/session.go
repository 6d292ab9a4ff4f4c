package signaltest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// SessionConfig describes a participant that joins through the control
// plane's join API (POST /v2/rooms/{roomId}/join) like the JS SDK does.
type SessionConfig struct {
	APIBase       string // control plane base URL, e.g. http://127.0.0.1:8080
	Token         string // rtc JWT
	RoomID        string
	ParticipantID string
	Name          string
	// Region, or Lat and Lon, tell the control plane where the client is.
	Region   string
	Lat, Lon *float64
	// AvoidEdges are edges not to use for the first join (tests that
	// steer a participant to one edge).
	AvoidEdges []string
	// Publish, when set, is published after every (re)join.
	Publish *PublishOptions
	// Client configures each signaling client (URL is set per edge).
	Client Config
	// LostAfter: a PeerConnection not connected for this long after it was
	// connected means the edge is gone (default 3 s). A closed socket or a
	// `reconnect` message acts at once.
	LostAfter  time.Duration
	HTTPClient *http.Client
}

// Rejoin records one move to another edge.
type Rejoin struct {
	At       time.Time     // when the loss (or reconnect request) was noticed
	From, To string        // edge ids
	Took     time.Duration // from noticing until `joined` on the new edge
	Reason   string        // socket-closed | media-lost | reconnect-requested
}

// Session is a participant that follows its room when its edge goes away:
// it asks the join API again with the same participant id and the lost edge
// in avoidEdges, joins the edge it gets and publishes again.
type Session struct {
	cfg SessionConfig

	mu      sync.Mutex
	cur     *Client
	edge    string
	rejoins []Rejoin
	closed  bool
	err     error

	stop chan struct{}
	done chan struct{}
	old  sync.WaitGroup // closing clients of edges left behind
}

func (s *Session) retire(c *Client) {
	s.old.Add(1)
	go func() {
		defer s.old.Done()
		c.Close()
	}()
}

// JoinAnswer is the join API's answer (the fields a client uses).
type JoinAnswer struct {
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
	Edges         []struct {
		EdgeID       string `json:"edgeId"`
		Region       string `json:"region"`
		SignalingURL string `json:"signalingUrl"`
		Ticket       string `json:"ticket"`
	} `json:"edges"`
}

// APIError is a non-200 answer of the join API.
type APIError struct {
	Status int
	Body   string
}

func (e *APIError) Error() string { return fmt.Sprintf("join API: %d %s", e.Status, e.Body) }

// AskJoin calls the join API.
func AskJoin(ctx context.Context, hc *http.Client, apiBase, token, roomID string, body map[string]any) (*JoinAnswer, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(apiBase, "/")+"/v2/rooms/"+roomID+"/join", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Status: resp.StatusCode, Body: string(bytes.TrimSpace(rb))}
	}
	var ja JoinAnswer
	if err := json.Unmarshal(rb, &ja); err != nil {
		return nil, err
	}
	if len(ja.Edges) == 0 {
		return nil, errors.New("join API: no edge offered")
	}
	return &ja, nil
}

// StartSession joins once (failing if that fails) and then keeps the
// participant in the room until Close.
func StartSession(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if cfg.LostAfter <= 0 {
		cfg.LostAfter = 3 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Session{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	c, edge, err := s.join(ctx, cfg.AvoidEdges, "")
	if err != nil {
		return nil, err
	}
	s.cur, s.edge = c, edge
	go s.watch()
	return s, nil
}

// join asks the API for edges (avoiding some) and joins the first that
// admits the client, trying the others in order. proof is the resume token
// of the participant's last `joined` when it moves (see
// Client.JoinWithProof), like the SDK sends it.
func (s *Session) join(ctx context.Context, avoid []string, proof string) (*Client, string, error) {
	body := map[string]any{"participantId": s.cfg.ParticipantID, "name": s.cfg.Name}
	if s.cfg.Region != "" {
		body["region"] = s.cfg.Region
	}
	if s.cfg.Lat != nil && s.cfg.Lon != nil {
		body["lat"], body["lon"] = *s.cfg.Lat, *s.cfg.Lon
	}
	if len(avoid) > 0 {
		body["avoidEdges"] = avoid
	}
	ja, err := AskJoin(ctx, s.cfg.HTTPClient, s.cfg.APIBase, s.cfg.Token, s.cfg.RoomID, body)
	if err != nil {
		return nil, "", err
	}
	var errs []error
	for _, e := range ja.Edges {
		cc := s.cfg.Client
		cc.URL = e.SignalingURL
		c, err := Dial(ctx, cc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, lobby, err := c.JoinWithProof(ctx, e.Ticket, s.cfg.Name, proof); err != nil || lobby {
			c.Close()
			errs = append(errs, fmt.Errorf("edge %s: lobby=%v %v", e.EdgeID, lobby, err))
			continue
		}
		if s.cfg.Publish != nil {
			if err := c.Publish(ctx, *s.cfg.Publish); err != nil {
				c.Close()
				errs = append(errs, fmt.Errorf("publish on %s: %w", e.EdgeID, err))
				continue
			}
		}
		return c, e.EdgeID, nil
	}
	return nil, "", errors.Join(errs...)
}

// Client is the current signaling client.
func (s *Session) Client() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// EdgeID is the edge the participant is on now.
func (s *Session) EdgeID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.edge
}

// Rejoins lists the moves so far.
func (s *Session) Rejoins() []Rejoin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejoin(nil), s.rejoins...)
}

// Err is the last error of a failed rejoin attempt (nil after a success).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Session) watch() {
	defer close(s.done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var lostSince time.Time
	wasUp := false
	seen := 0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		c, edge := s.cur, s.edge
		s.mu.Unlock()
		reason := ""
		msgs := c.Messages()
		for _, m := range msgs[seen:] {
			if m.Type == wire.TypeReconnect {
				reason = "reconnect-requested"
			}
			if m.Type == wire.TypeRemoved {
				return // removed by a moderator or the room closed: stay out
			}
		}
		seen = len(msgs)
		up := c.Connected(wire.TargetSubscriber) || c.Connected(wire.TargetPublisher)
		switch {
		case c.Closed():
			reason = "socket-closed"
		case up:
			wasUp, lostSince = true, time.Time{}
		case wasUp && lostSince.IsZero():
			lostSince = time.Now()
		case wasUp && time.Since(lostSince) > s.cfg.LostAfter:
			reason = "media-lost"
		}
		if reason == "" {
			continue
		}
		noticed := time.Now()
		if reason == "socket-closed" || reason == "media-lost" {
			// The socket may linger after a crash: stop the old client first.
			s.retire(c)
		}
		var next *Client
		var to string
		var err error
		proof := ""
		if j := c.Joined(); j != nil {
			proof = j.ResumeToken
		}
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			next, to, err = s.join(ctx, []string{edge}, proof)
			cancel()
			if err == nil {
				break
			}
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(min(time.Duration(100<<min(attempt, 5))*time.Millisecond, 2*time.Second)):
			}
		}
		s.mu.Lock()
		s.cur, s.edge, s.err = next, to, nil
		s.rejoins = append(s.rejoins, Rejoin{At: noticed, From: edge, To: to, Took: time.Since(noticed), Reason: reason})
		s.mu.Unlock()
		if reason == "reconnect-requested" {
			_ = c.Leave() // moved on purpose: leave the draining edge now
			s.retire(c)
		}
		wasUp, lostSince, seen = false, time.Time{}, 0
	}
}

// Close leaves the room and stops following it.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c != nil {
		_ = c.Leave()
		c.Close()
	}
	s.old.Wait()
}
