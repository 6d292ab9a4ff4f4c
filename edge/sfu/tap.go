package sfu

import (
	"fmt"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// A Tap hands one published track to an in-process consumer (edge/egress)
// without a PeerConnection: it is an ordinary Forwarder whose DownTrack is
// bound to the consumer instead of an RTP sender. It therefore gets what a
// subscriber gets — keyframe gating, one continuous sequence/timestamp
// space across simulcast switches, pauses and resumes — with no DTLS, SRTP
// or congestion control, and it is invisible to the room (no participant,
// no stats, no quality events).

// TapWriter receives a tap's packets. WriteRTP runs on the track's reader
// goroutine: it must copy what it keeps and never block.
type TapWriter interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}

// Tap is one in-process consumer of one published track.
type Tap struct {
	f    *Forwarder
	info wire.TrackInfo
}

// Member describes a participant of a room for in-process consumers.
type Member struct {
	ID     string
	Name   string
	Remote bool // published on another edge, relayed in
	Tracks []wire.TrackInfo
}

// Members lists the room's participants that may publish (local first when
// a participant is both local and relayed in for a moment), with their
// tracks. Hidden relay subscribers and subscribe-only viewers are left out.
func (r *Room) Members() []Member {
	seen := map[string]int{}
	var out []Member
	for _, p := range r.all() {
		if p.relay || p.pub == nil {
			continue
		}
		m := Member{ID: p.id, Name: p.name, Remote: p.remote, Tracks: p.Tracks()}
		if i, ok := seen[p.id]; ok {
			if out[i].Remote && !p.remote {
				out[i] = m
			}
			continue
		}
		seen[p.id] = len(out)
		out = append(out, m)
	}
	return out
}

// ActiveSpeakers returns the room's current speakers, loudest first (as
// last sent to participants).
func (r *Room) ActiveSpeakers() []string {
	if l := r.speakers.Load(); l != nil {
		return append([]string(nil), (*l)...)
	}
	return nil
}

// Tap attaches w to a participant's published track. The first packet w
// sees of a video track is a keyframe.
func (r *Room) Tap(participantID, trackID string, w TapWriter) (*Tap, error) {
	var t *PublishedTrack
	for _, p := range r.all() {
		if p.id != participantID || p.relay || p.pub == nil {
			continue
		}
		if pt := p.pub.track(trackID); pt != nil && (t == nil || p.local()) {
			t = pt
		}
	}
	if t == nil {
		return nil, fmt.Errorf("%w: track %s/%s", ErrNotFound, participantID, trackID)
	}
	f := newForwarder(t, nil, autoPick)
	f.dt.onBind = nil
	f.dt.b.Store(&binding{ssrc: 1, pt: uint8(t.codec.PayloadType), w: tapWriter{w}})
	t.addForwarder(f)
	f.RequestKeyframe()
	return &Tap{f: f, info: t.Info()}, nil
}

// Info describes the tapped track as it was when the tap was made.
func (tp *Tap) Info() wire.TrackInfo { return tp.info }

// Codec is the tapped track's codec.
func (tp *Tap) Codec() webrtc.RTPCodecParameters { return tp.f.track.codec }

// Maintain is the tap's housekeeping, to be called every few hundred
// milliseconds by its owner: it follows the best simulcast layer present
// and repeats a keyframe request that went unanswered for a second.
func (tp *Tap) Maintain() {
	f := tp.f
	if f.track.simulcast && f.pinned.Load() == autoPick {
		avail, _ := f.track.availableLayers()
		for i := nLayers - 1; i >= 0; i-- {
			if avail[i] {
				f.setTarget(i)
				break
			}
		}
	}
	if f.waiting(time.Second) {
		f.waitingSince.Store(monoNow())
		f.RequestKeyframe()
	}
}

// RequestKeyframe asks the publisher for a keyframe (coalesced like every
// other request for the track).
func (tp *Tap) RequestKeyframe() { tp.f.RequestKeyframe() }

// Ended reports whether the tapped track is gone (unpublished or its
// publisher left).
func (tp *Tap) Ended() bool {
	tp.f.track.mu.Lock()
	defer tp.f.track.mu.Unlock()
	return tp.f.track.ended
}

// Close detaches the tap. Idempotent.
func (tp *Tap) Close() {
	tp.f.dt.b.Store(nil)
	tp.f.track.removeForwarder(tp.f)
}

// tapWriter adapts a TapWriter to webrtc.TrackLocalWriter.
type tapWriter struct{ w TapWriter }

func (t tapWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	return t.w.WriteRTP(h, payload)
}
func (t tapWriter) Write(b []byte) (int, error) { return len(b), nil }
