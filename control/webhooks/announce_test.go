package webhooks

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// announcingOutbox is a fakeOutbox that implements Announcer.
type announcingOutbox struct {
	*fakeOutbox
	mu        sync.Mutex
	announced []string // delivery ids, in order
	fail      bool
}

func (o *announcingOutbox) Announce(ctx context.Context, d Delivery, at time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail {
		return errors.New("no quorum")
	}
	o.announced = append(o.announced, d.ID)
	return nil
}

func (o *announcingOutbox) announcements() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.announced...)
}

func (o *announcingOutbox) setFail(v bool) {
	o.mu.Lock()
	o.fail = v
	o.mu.Unlock()
}

// TestAnnounceBeforeAttempt: an Outbox that implements Announcer hears of
// every attempt before the request leaves; when it cannot be told, the
// attempt is not made (the delivery stays due and goes out once it can).
func TestAnnounceBeforeAttempt(t *testing.T) {
	clock := newFakeClock()
	o := &announcingOutbox{fakeOutbox: newFakeOutbox()}
	o.setFail(true)
	var sawUnannounced bool
	var mu sync.Mutex
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		id := r.Header.Get(HeaderWebhookID)
		found := false
		for _, a := range o.announcements() {
			found = found || a == id
		}
		if !found {
			mu.Lock()
			sawUnannounced = true
			mu.Unlock()
		}
	})
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	d := startDispatcher(t, testConfig(clock), o)
	time.Sleep(100 * time.Millisecond)
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("%d requests sent although the attempt could not be announced", n)
	}
	if row := o.row("msg_1"); row.status != StatusPending || row.d.Attempts != 0 {
		t.Fatalf("row %+v, want pending without attempts", row)
	}
	o.setFail(false)
	d.Notify()
	waitStatus(t, o.fakeOutbox, "msg_1", StatusDelivered, 1)
	mu.Lock()
	defer mu.Unlock()
	if sawUnannounced {
		t.Fatal("a request arrived before its attempt was announced")
	}
}
