// Command participants joins real pion participants to a Meridian room through
// the public join API and signaling, publishes synthetic audio and video, and
// stays until stdin closes or it is signalled. The Node compatibility suite
// uses it to test the server SDK's sessions calls against a live meeting.
//
//	participants -api http://127.0.0.1:8080 -api-key K -api-secret S -room abcd-efgh-ijkl -ids alice,bob
//
// It prints "READY" once every participant receives media from the others,
// then "LEFT <id>" whenever one is removed by the server.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "Meridian API base URL")
	key := flag.String("api-key", "", "API key")
	secret := flag.String("api-secret", "", "API secret")
	room := flag.String("room", "", "room id")
	idList := flag.String("ids", "alice,bob", "participant ids")
	flag.Parse()
	if err := run(*api, *key, *secret, *room, strings.Split(*idList, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "participants:", err)
		os.Exit(1)
	}
}

func join(ctx context.Context, api, key, secret, room, id string) (*signaltest.Client, error) {
	tok, err := auth.Mint(auth.MintOptions{APIKey: key, Secret: []byte(secret), Permissions: []string{auth.PermAllowJoin}, Roles: []string{auth.RoleRTC},
		ParticipantID: id, TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"name": "Name " + id})
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/v2/rooms/"+room+"/join", bytes.NewReader(body))
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("join %s: %d %s", id, resp.StatusCode, raw)
	}
	var jr struct {
		Edges []struct{ SignalingURL, Ticket string }
	}
	if err := json.Unmarshal(raw, &jr); err != nil || len(jr.Edges) == 0 {
		return nil, fmt.Errorf("join %s: bad response %s", id, raw)
	}
	cl, err := signaltest.Dial(ctx, signaltest.Config{URL: jr.Edges[0].SignalingURL, PingInterval: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	if _, _, err := cl.Join(ctx, jr.Edges[0].Ticket, "Name "+id); err != nil {
		cl.Close()
		return nil, err
	}
	if err := cl.Publish(ctx, signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

func run(api, key, secret, room string, ids []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clients := map[string]*signaltest.Client{}
	defer func() {
		for _, c := range clients {
			_ = c.Leave()
			c.Close()
		}
	}()
	for _, id := range ids {
		cl, err := join(ctx, api, key, secret, room, id)
		if err != nil {
			return err
		}
		clients[id] = cl
	}
	// Ready once everyone receives video from everyone else.
	for {
		ready := true
		for id, cl := range clients {
			for other := range clients {
				if other == id {
					continue
				}
				got := 0
				for _, tr := range cl.Tracks() {
					if tr.ParticipantID == other && tr.Kind == "video" {
						got += tr.Packets
					}
				}
				ready = ready && got > 10
			}
		}
		if ready {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("media did not flow between participants")
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Println("READY")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(stdinClosed)
	}()
	reported := map[string]bool{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-stdinClosed:
			return nil
		case <-tick.C:
			for id, cl := range clients {
				if cl.Closed() && !reported[id] {
					reported[id] = true
					fmt.Println("LEFT", id)
				}
			}
		}
	}
}
