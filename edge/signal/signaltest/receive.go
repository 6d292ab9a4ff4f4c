package signaltest

import (
	"slices"
	"time"

	"github.com/pion/webrtc/v4"
)

// TrackStats is what the client received on one subscribed track.
type TrackStats struct {
	ParticipantID string // MediaStream id = publisher participant id
	TrackID       string
	Kind          string
	SSRCs         []uint32 // every SSRC seen (a forwarded track keeps one)
	Packets       int
	Bytes         int
	Keyframes     int
	FirstPacketAt time.Time
	FirstKeyAt    time.Time
	// Sequence numbers, extended (no 16-bit wrap).
	FirstSeq, HighestSeq int64
	Unique, Duplicates   int
	// Layers counts packets per synthetic layer byte ('q', 'h', 'f'; 'v'
	// for non-simulcast video).
	Layers    map[byte]int
	LastLayer byte
	// Switches lists layer changes in arrival order.
	Switches []LayerSwitch
	// TimestampBackwards counts in-order packets whose RTP timestamp went back.
	TimestampBackwards int
}

// LayerSwitch is one change of forwarded layer, with the sequence number
// step across it (1 = continuous).
type LayerSwitch struct {
	From, To byte
	SeqStep  int64
}

// Lost is the number of sequence numbers never received.
func (t TrackStats) Lost() int64 {
	if t.Unique == 0 {
		return 0
	}
	return t.HighestSeq - t.FirstSeq + 1 - int64(t.Unique)
}

type remoteTrack struct {
	st      TrackStats
	seen    map[int64]bool
	lastTS  uint32
	hasTS   bool
	lastSeq int64
}

func (c *Client) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	key := t.StreamID() + "/" + t.ID()
	rt := &remoteTrack{
		st:   TrackStats{ParticipantID: t.StreamID(), TrackID: t.ID(), Kind: t.Kind().String(), Layers: map[byte]int{}},
		seen: map[int64]bool{},
	}
	c.mu.Lock()
	if old := c.remote[key]; old != nil {
		rt = old // re-offered after a renegotiation: keep counting
	} else {
		c.remote[key] = rt
	}
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		video := t.Kind() == webrtc.RTPCodecTypeVideo
		for {
			pkt, _, err := t.ReadRTP()
			if err != nil {
				return
			}
			now := time.Now()
			c.mu.Lock()
			s := &rt.st
			if !slices.Contains(s.SSRCs, pkt.SSRC) {
				s.SSRCs = append(s.SSRCs, pkt.SSRC)
			}
			s.Packets++
			s.Bytes += len(pkt.Payload)
			if s.FirstPacketAt.IsZero() {
				s.FirstPacketAt = now
			}
			var ext int64
			if s.Unique == 0 && s.Duplicates == 0 {
				ext = 1<<32 + int64(pkt.SequenceNumber)
				s.FirstSeq, s.HighestSeq = ext, ext
			} else {
				ext = s.HighestSeq + int64(int16(pkt.SequenceNumber-uint16(s.HighestSeq)))
			}
			if rt.seen[ext] {
				s.Duplicates++
			} else {
				rt.seen[ext] = true
				s.Unique++
				if ext < s.FirstSeq {
					s.FirstSeq = ext
				}
			}
			inOrder := ext > s.HighestSeq || s.Unique == 1
			if ext > s.HighestSeq {
				s.HighestSeq = ext
			}
			if inOrder {
				if rt.hasTS && int32(pkt.Timestamp-rt.lastTS) < 0 {
					s.TimestampBackwards++
				}
				rt.lastTS, rt.hasTS = pkt.Timestamp, true
			}
			if video {
				if layer, _, key, ok := parseFrame(pkt.Payload); ok {
					s.Layers[layer]++
					if key {
						s.Keyframes++
						if s.FirstKeyAt.IsZero() {
							s.FirstKeyAt = now
						}
					}
					if inOrder {
						if s.LastLayer != 0 && layer != s.LastLayer {
							s.Switches = append(s.Switches, LayerSwitch{From: s.LastLayer, To: layer, SeqStep: ext - rt.lastSeq})
						}
						s.LastLayer = layer
						rt.lastSeq = ext
					}
				}
			}
			c.mu.Unlock()
		}
	}()
}

// Track returns the stats of one subscribed track.
func (c *Client) Track(participantID, trackID string) (TrackStats, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rt := c.remote[participantID+"/"+trackID]
	if rt == nil {
		return TrackStats{}, false
	}
	return copyStats(rt.st), true
}

// Tracks returns the stats of every subscribed track.
func (c *Client) Tracks() []TrackStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]TrackStats, 0, len(c.remote))
	for _, rt := range c.remote {
		out = append(out, copyStats(rt.st))
	}
	return out
}

func copyStats(s TrackStats) TrackStats {
	s.SSRCs = slices.Clone(s.SSRCs)
	s.Switches = slices.Clone(s.Switches)
	layers := make(map[byte]int, len(s.Layers))
	for k, v := range s.Layers {
		layers[k] = v
	}
	s.Layers = layers
	return s
}
