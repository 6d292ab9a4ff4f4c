package multiregion

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// connWatch records when a client's PeerConnections first reach
// "connected". signaltest exposes the state, not its changes, so it is
// polled every 2 ms from the moment the session's join returned (before
// that the publisher PeerConnection has no answer yet, so it cannot be
// connected; a subscriber PeerConnection already connected at the first
// poll is recorded as such).
type connWatch struct {
	mu           sync.Mutex
	pub, sub     time.Time
	subOffer     time.Time // the edge's first subscriber offer arrived
	subAtFirst   bool      // the subscriber was connected at the first poll
	stop, done   chan struct{}
	client       *signaltest.Client
	watchStarted time.Time
}

func watchConnected(c *signaltest.Client) *connWatch {
	cw := &connWatch{client: c, stop: make(chan struct{}), done: make(chan struct{}), watchStarted: time.Now()}
	go func() {
		defer close(cw.done)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		seen := 0 // messages already scanned for the subscriber offer
		for first := true; ; first = false {
			now := time.Now()
			var offerAt time.Time
			if msgs := c.Messages(); len(msgs) > seen {
				for _, env := range msgs[seen:] {
					if d, err := signaltest.Decode[wire.SDP](env); env.Type == wire.TypeOffer && err == nil && d.Target == wire.TargetSubscriber {
						offerAt = now
						break
					}
				}
				seen = len(msgs)
			}
			cw.mu.Lock()
			if cw.subOffer.IsZero() && !offerAt.IsZero() {
				cw.subOffer = offerAt
			}
			if cw.pub.IsZero() && c.Connected(wire.TargetPublisher) {
				cw.pub = now
			}
			if cw.sub.IsZero() && c.Connected(wire.TargetSubscriber) {
				cw.sub, cw.subAtFirst = now, first
			}
			both := !cw.pub.IsZero() && !cw.sub.IsZero()
			cw.mu.Unlock()
			if both || time.Since(cw.watchStarted) > 30*time.Second {
				return
			}
			select {
			case <-cw.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return cw
}

func (cw *connWatch) close() {
	select {
	case <-cw.stop:
	default:
		close(cw.stop)
	}
	<-cw.done
}

// connected is when the client was first connected: the first of its
// PeerConnections to reach "connected" (zero if none did).
func (cw *connWatch) connected() time.Time {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	switch {
	case cw.pub.IsZero():
		return cw.sub
	case cw.sub.IsZero() || cw.pub.Before(cw.sub):
		return cw.pub
	}
	return cw.sub
}

func (cw *connWatch) String() string {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	at := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return "+" + t.Sub(cw.watchStarted).Round(time.Millisecond).String()
	}
	s := fmt.Sprintf("publisher %s, subscriber offered %s, connected %s after the join returned", at(cw.pub), at(cw.subOffer), at(cw.sub))
	if cw.subAtFirst {
		s += " (subscriber already connected at the first poll)"
	}
	return s
}

// firstMedia is when to first received audio and video RTP from from, and
// the first video keyframe (zero: none yet).
type firstMedia struct{ audio, video, key time.Time }

func firstFrom(c *signaltest.Client, from string) firstMedia {
	var fm firstMedia
	earliest := func(cur *time.Time, t time.Time) {
		if !t.IsZero() && (cur.IsZero() || t.Before(*cur)) {
			*cur = t
		}
	}
	for _, tr := range c.Tracks() {
		if tr.ParticipantID != from || tr.Packets == 0 {
			continue
		}
		switch tr.Kind {
		case "audio":
			earliest(&fm.audio, tr.FirstPacketAt)
		case "video":
			earliest(&fm.video, tr.FirstPacketAt)
			earliest(&fm.key, tr.FirstKeyAt)
		}
	}
	return fm
}

// pairDelay is, for one pair of participants, the time from the later of
// the two being connected to the moment each has received the other's
// first audio and first video RTP packet (the slowest of the four first
// packets), with the parts that explain it.
type pairDelay struct {
	a, b      string
	connected time.Time // later of the two clients' connected times
	took      time.Duration
	missing   string // non-empty: a far-side stream never arrived
	detail    string
}

// joinToMedia measures pairDelay for every pair (a in as, b in bs). It
// reads the clients as they are now: call it once everyone hears everyone.
func joinToMedia(sess map[string]*signaltest.Session, watch map[string]*connWatch, as, bs []string) []pairDelay {
	var out []pairDelay
	for _, a := range as {
		for _, b := range bs {
			pd := pairDelay{a: a, b: b}
			ca, cb := watch[a].connected(), watch[b].connected()
			if ca.IsZero() || cb.IsZero() {
				pd.missing = fmt.Sprintf("%s connected %v, %s connected %v", a, !ca.IsZero(), b, !cb.IsZero())
				out = append(out, pd)
				continue
			}
			pd.connected = ca
			if cb.After(ca) {
				pd.connected = cb
			}
			var parts []string
			var last time.Time
			for _, dir := range [][2]string{{a, b}, {b, a}} {
				to, from := dir[0], dir[1]
				fm := firstFrom(sess[to].Client(), from)
				for kind, at := range map[string]time.Time{"audio": fm.audio, "video": fm.video} {
					if at.IsZero() {
						pd.missing += fmt.Sprintf("%s never received %s's %s; ", to, from, kind)
						continue
					}
					if at.After(last) {
						last = at
					}
				}
				rel := func(t time.Time) string {
					if t.IsZero() {
						return "-"
					}
					return t.Sub(pd.connected).Round(time.Millisecond).String()
				}
				parts = append(parts, fmt.Sprintf("%s<-%s audio %s video %s keyframe %s", to, from, rel(fm.audio), rel(fm.video), rel(fm.key)))
			}
			pd.took = last.Sub(pd.connected)
			connLag := cb.Sub(ca).Round(time.Millisecond)
			pd.detail = fmt.Sprintf("%s (%s connected %v before %s)", strings.Join(parts, ", "), a, connLag, b)
			out = append(out, pd)
		}
	}
	return out
}

// summarise returns the p50 and max of the measured pairs.
func summarise(pds []pairDelay) (p50, worst time.Duration) {
	var ds []time.Duration
	for _, pd := range pds {
		if pd.missing == "" {
			ds = append(ds, pd.took)
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[(len(ds)-1)/2], ds[len(ds)-1]
}
