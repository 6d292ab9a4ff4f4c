package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentAnswersAreTheirOwn: room answers are encoded into pooled
// buffers (roomjson.go), so a buffer handed back while fasthttp still
// writes it would show up as one client reading another's room. Clients
// create rooms and read them back at once over real connections, and every
// answer must be the room asked about, whole.
func TestConcurrentAnswersAreTheirOwn(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	base := c.Node(0).URL()
	const clients, rounds = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			for j := range rounds {
				custom := fmt.Sprintf("client-%d-room-%d-%s", i, j, "padding-so-the-answers-differ-in-length"[:j%40])
				var created struct {
					RoomID       string `json:"roomId"`
					CustomRoomID string `json:"customRoomId"`
				}
				if err := call(base, "POST", "/v2/rooms", tok, fmt.Sprintf(`{"customRoomId":%q}`, custom), &created); err != nil {
					errs <- err
					return
				}
				if created.CustomRoomID != custom {
					errs <- fmt.Errorf("created %q, answered with room %+v", custom, created)
					return
				}
				var got struct {
					RoomID       string `json:"roomId"`
					CustomRoomID string `json:"customRoomId"`
				}
				if err := call(base, "GET", "/v2/rooms/"+created.RoomID, tok, "", &got); err != nil {
					errs <- err
					return
				}
				if got != created {
					errs <- fmt.Errorf("read %+v back as %+v", created, got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func call(base, method, path, tok, body string, v any) error {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: %v: %s", method, path, err, b)
	}
	return nil
}
