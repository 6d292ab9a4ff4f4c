package sfu

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// Room is the router of one room: its participants and the fan-out of their
// tracks. One housekeeping goroutine per room (run) sends deferred keyframe
// requests, updates rates, picks simulcast layers and detects active speakers.
type Room struct {
	sfu *SFU
	id  string

	members int // guarded by sfu.mu: participants created and not yet closed

	mu           sync.Mutex
	participants map[string]*Participant
	closed       bool

	done chan struct{}
	wg   sync.WaitGroup

	// Owned by the run goroutine: the last quality score broadcast per
	// participant, and who has been sent the full set.
	lastQuality map[string]float64
	informed    map[string]bool

	// speakers is the last active-speaker list sent (ActiveSpeakers).
	speakers atomic.Pointer[[]string]
}

func newRoom(s *SFU, id string) *Room {
	r := &Room{sfu: s, id: id, participants: make(map[string]*Participant), done: make(chan struct{})}
	r.wg.Add(1)
	go r.run()
	return r
}

// ID returns the room id.
func (r *Room) ID() string { return r.id }

func (r *Room) start(p *Participant) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	old := r.participants[p.key]
	r.participants[p.key] = p
	var tracks []*PublishedTrack
	for key, o := range r.participants {
		if key != p.key && o.pub != nil && sends(o, p) {
			tracks = append(tracks, o.pub.trackList()...)
		}
	}
	r.mu.Unlock()
	if old != nil && old != p {
		old.Close()
	}
	if p.sub != nil {
		for _, t := range tracks {
			p.sub.subscribe(t)
		}
	}
	return nil
}

// sends tells whether subscriber p is sent (and told of) owner's tracks.
// A relay subscriber carries this edge's own tracks only: tracks relayed in
// from another edge reach every edge from their origin. A local participant
// is not sent the tracks of its own id relayed from another edge (a second
// tab or device, or a move between edges not yet settled, until the edges
// settle which connection stays): they are its own media.
func sends(owner, p *Participant) bool {
	if p.relay && owner.remote {
		return false
	}
	return !(p.local() && owner.id == p.id)
}

func (r *Room) leave(p *Participant) {
	r.mu.Lock()
	if r.participants[p.key] == p {
		delete(r.participants, p.key)
	}
	r.mu.Unlock()
}

// others returns every participant except the one with map key key.
func (r *Room) others(key string) []*Participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Participant, 0, len(r.participants))
	for k, p := range r.participants {
		if k != key {
			out = append(out, p)
		}
	}
	return out
}

func (r *Room) all() []*Participant { return r.others("") }

func (r *Room) isMember(p *Participant) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.participants[p.key] == p
}

// publish fans a new track out to everyone allowed to subscribe.
func (r *Room) publish(t *PublishedTrack) {
	owner := t.pub.part
	if !r.isMember(owner) {
		return
	}
	info := t.Info()
	for _, p := range r.others(owner.key) {
		if !sends(owner, p) {
			continue
		}
		if p.sub != nil {
			p.sub.subscribe(t)
		}
		p.sink.TrackPublished(info)
	}
}

// unpublish removes a track from every subscriber.
func (r *Room) unpublish(t *PublishedTrack) {
	owner := t.pub.part
	for _, p := range r.others(owner.key) {
		if !sends(owner, p) {
			continue
		}
		if p.sub != nil {
			p.sub.unsubscribe(t)
		}
		p.sink.TrackUnpublished(owner.id, t.info.TrackID)
	}
	// Forwarders of subscribers that left meanwhile.
	for _, f := range t.forwarders() {
		t.removeForwarder(f)
	}
}

// Participant returns a started local participant by id.
func (r *Room) Participant(id string) *Participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.participants[id]
}

// Tracks lists every published track in the room by participant id.
func (r *Room) Tracks() map[string][]wire.TrackInfo {
	out := map[string][]wire.TrackInfo{}
	for _, p := range r.all() {
		if !p.relay {
			out[p.id] = append(out[p.id], p.Tracks()...)
		}
	}
	return out
}

func (r *Room) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	close(r.done)
	r.wg.Wait()
}

func (r *Room) run() {
	defer r.wg.Done()
	cfg := r.sfu.cfg
	t := time.NewTicker(cfg.Tick)
	defer t.Stop()
	var det speakerDetector
	var lastSpeaker, lastQuality time.Time
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		now := r.sfu.now()
		ps := r.all()
		slow := now.Sub(lastSpeaker) >= cfg.SpeakerInterval
		for _, p := range ps {
			if p.pub == nil {
				continue
			}
			for _, tr := range p.pub.trackList() {
				tr.flushKeyframes(now)
				if slow {
					tr.tick(now)
				}
			}
		}
		for _, p := range ps {
			if p.sub != nil {
				p.sub.tick(now, slow)
			}
		}
		if slow {
			lastSpeaker = now
			r.detectSpeakers(&det, ps)
		}
		if now.Sub(lastQuality) >= cfg.QualityInterval {
			lastQuality = now
			r.reportQuality(ps, now)
		}
	}
}

func (r *Room) detectSpeakers(det *speakerDetector, ps []*Participant) {
	samples := make(map[string]levelSample, len(ps))
	for _, p := range ps {
		if p.pub == nil {
			continue
		}
		var s levelSample
		for _, t := range p.pub.trackList() {
			if t.levelExt == 0 || t.paused.Load() {
				continue
			}
			s.sum += t.levelSum.Swap(0)
			s.count += t.levelCount.Swap(0)
		}
		if s.count > 0 {
			samples[p.id] = s
		}
	}
	list, changed := det.Update(samples)
	if !changed {
		return
	}
	r.speakers.Store(&list)
	for _, p := range ps {
		p.sink.ActiveSpeakers(append([]string(nil), list...))
	}
}

// qualityStep is the score change worth telling everyone about.
const qualityStep = 0.5

// reportQuality sends connection-quality events: the full set to a
// participant that has not had it yet, and afterwards only scores that moved
// by qualityStep. Sending every score to everyone every interval is O(N²)
// frames (62,500 per interval at 250 participants) for no new information.
func (r *Room) reportQuality(ps []*Participant, now time.Time) {
	if r.lastQuality == nil {
		r.lastQuality, r.informed = map[string]float64{}, map[string]bool{}
	}
	stats := make([]edgeapi.ParticipantStats, 0, len(ps))
	present := make(map[string]bool, len(ps))
	var changed []edgeapi.ParticipantStats
	for _, p := range ps {
		if !p.local() {
			// A remote participant's quality is measured by its own edge and
			// arrives over the cascade leg.
			continue
		}
		st := p.stats(r.id, now)
		stats = append(stats, st)
		present[st.ParticipantID] = true
		if last, ok := r.lastQuality[st.ParticipantID]; !ok || math.Abs(last-st.Quality) >= qualityStep {
			changed = append(changed, st)
		}
	}
	for _, p := range ps {
		if p.remote || !p.ready.Load() {
			// Not told `joined` yet: it gets the full set at the first round
			// after it is (informed stays false).
			continue
		}
		send := changed
		if !r.informed[p.key] {
			send = stats
			r.informed[p.key] = true
		}
		for _, st := range send {
			p.sink.ConnectionQuality(st.ParticipantID, st.Quality)
		}
	}
	for _, st := range changed {
		r.lastQuality[st.ParticipantID] = st.Quality
	}
	for id := range r.lastQuality {
		if !present[id] {
			delete(r.lastQuality, id)
		}
	}
	keys := make(map[string]bool, len(ps))
	for _, p := range ps {
		keys[p.key] = true
	}
	for k := range r.informed {
		if !keys[k] {
			delete(r.informed, k)
		}
	}
}
