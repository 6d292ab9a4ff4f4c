package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/auth"
)

// joiner turns a participant id into (signaling URL, ticket).
type joiner interface {
	newRoom(ctx context.Context) (string, error)
	join(ctx context.Context, roomID, pid string, publish bool) (url, ticket string, err error)
}

// apiJoiner goes through the control plane's public API, like a browser:
// POST /v2/rooms, then POST /v2/rooms/{roomId}/join with an rtc token.
type apiJoiner struct {
	base, key, secret string
	http              *http.Client
}

func (j *apiJoiner) token(o auth.MintOptions) (string, error) {
	o.APIKey, o.Secret, o.TTL = j.key, []byte(j.secret), time.Hour
	return auth.Mint(o)
}

// do POSTs JSON and decodes the answer, retrying while rate limited.
func (j *apiJoiner) do(ctx context.Context, path, tok string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.base+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := j.http.Do(req)
		if err != nil {
			return err
		}
		data, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 50 {
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(max(wait, 0))*time.Second + 100*time.Millisecond):
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
		}
		return json.Unmarshal(data, out)
	}
}

func (j *apiJoiner) newRoom(ctx context.Context) (string, error) {
	tok, err := j.token(auth.MintOptions{Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod}, Roles: []string{auth.RoleCrawler}})
	if err != nil {
		return "", err
	}
	var room struct {
		RoomID string `json:"roomId"`
	}
	if err := j.do(ctx, "/v2/rooms", tok, map[string]any{}, &room); err != nil {
		return "", err
	}
	return room.RoomID, nil
}

func (j *apiJoiner) join(ctx context.Context, roomID, pid string, publish bool) (string, string, error) {
	// The publisher only publishes and the subscribers only subscribe, as
	// in a webinar: no PeerConnection exists that the scenario does not use.
	sub := !publish
	tok, err := j.token(auth.MintOptions{Permissions: []string{auth.PermAllowJoin}, Roles: []string{auth.RoleRTC},
		ParticipantID: pid, CanPublish: &publish, CanSubscribe: &sub})
	if err != nil {
		return "", "", err
	}
	var jr struct {
		Edges []struct {
			SignalingURL string `json:"signalingUrl"`
			Ticket       string `json:"ticket"`
		} `json:"edges"`
	}
	if err := j.do(ctx, "/v2/rooms/"+roomID+"/join", tok, map[string]any{"name": pid}, &jr); err != nil {
		return "", "", err
	}
	if len(jr.Edges) == 0 {
		return "", "", fmt.Errorf("join %s: no edges in the answer", pid)
	}
	return jr.Edges[0].SignalingURL, jr.Edges[0].Ticket, nil
}

// directJoiner dials the baseline forwarder, which accepts any ticket.
type directJoiner struct{ wsURL string }

func (d *directJoiner) newRoom(context.Context) (string, error) {
	return fmt.Sprintf("room-%d", time.Now().UnixNano()), nil
}

func (d *directJoiner) join(_ context.Context, roomID, pid string, _ bool) (string, string, error) {
	return d.wsURL, roomID + "/" + pid, nil
}

// joinCandidate is one edge of a join answer (the fields a client uses).
type joinCandidate struct {
	EdgeID       string `json:"edgeId"`
	Region       string `json:"region"`
	SignalingURL string `json:"signalingUrl"`
	Ticket       string `json:"ticket"`
}

// place asks the join API for edges like a client that says where it is
// (region hint) and, on failover, which edges it just lost (avoidEdges),
// keeping its participant id. The answer lists candidates, best first.
func (j *apiJoiner) place(ctx context.Context, roomID, pid string, publish bool, region string, avoid []string) ([]joinCandidate, error) {
	sub := !publish
	tok, err := j.token(auth.MintOptions{Permissions: []string{auth.PermAllowJoin}, Roles: []string{auth.RoleRTC},
		ParticipantID: pid, CanPublish: &publish, CanSubscribe: &sub})
	if err != nil {
		return nil, err
	}
	body := map[string]any{"participantId": pid, "name": pid}
	if region != "" {
		body["region"] = region
	}
	if len(avoid) > 0 {
		body["avoidEdges"] = avoid
	}
	var jr struct {
		Edges []joinCandidate `json:"edges"`
	}
	if err := j.do(ctx, "/v2/rooms/"+roomID+"/join", tok, body, &jr); err != nil {
		return nil, err
	}
	if len(jr.Edges) == 0 {
		return nil, fmt.Errorf("join %s: no edges in the answer", pid)
	}
	return jr.Edges, nil
}
