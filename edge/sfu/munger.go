package sfu

// Munger rewrites the sequence numbers and timestamps of one forwarded stream
// so that the receiver sees a single continuous RTP stream while the source
// behind it changes (a simulcast layer switch, an unmute, a resume).
//
// It is pure: no goroutines, no locks, no clock (arrival times are passed in).
// Its owner (a Forwarder) serialises calls. Internally it works on extended
// 64-bit sequence numbers and timestamps, so 16/32-bit wrap-around never
// reaches the arithmetic.
type Munger struct {
	started bool
	rebase  bool // the next packet starts a new source

	// Input side (current source), extended.
	inStart     uint64 // first packet of the source; older ones are dropped
	inHighest   uint64
	inHighestTS uint64
	seen        [seenWords]uint64 // bit i: inHighest-i was forwarded

	// Offsets: out = in - offset (mod 2^64).
	seqOffset uint64
	tsOffset  uint64

	// Output side, extended.
	outHighest   uint64
	outHighestTS uint64
	lastArrival  int64 // ns, arrival of the packet that set outHighest
}

const (
	seenWords = 4
	seenBits  = seenWords * 64 // reorder window
	seqBase   = 1 << 32        // extended numbers start here so they never go below zero
	tsBase    = 1 << 40
)

// MungeResult classifies one incoming packet.
type MungeResult uint8

const (
	// Contiguous: the next packet of the stream.
	Contiguous MungeResult = iota
	// Gap: newer than expected; the packets in between are missing.
	Gap
	// OutOfOrder: older than the newest but not seen before (late or retransmitted).
	OutOfOrder
	// Duplicate: already forwarded; dropped.
	Duplicate
	// TooOld: before the current source started or beyond the reorder window; dropped.
	TooOld
	// Switched: first packet of a new source, re-based onto the output.
	Switched
)

func (r MungeResult) String() string {
	switch r {
	case Contiguous:
		return "contiguous"
	case Gap:
		return "gap"
	case OutOfOrder:
		return "out-of-order"
	case Duplicate:
		return "duplicate"
	case TooOld:
		return "too-old"
	case Switched:
		return "switched"
	}
	return "unknown"
}

// Forwarded reports whether a packet with this result is sent on.
func (r MungeResult) Forwarded() bool { return r != Duplicate && r != TooOld }

// MungeIn is one incoming packet as the munger sees it.
type MungeIn struct {
	Seq       uint16
	TS        uint32
	Arrival   int64  // ns, any monotonic origin
	ClockRate uint32 // of the codec, for the timestamp gap on a switch
}

// MungeOut is the rewritten header fields.
type MungeOut struct {
	Seq uint16
	TS  uint32
}

// MungerState is what a stream needs to continue elsewhere (exported for
// edge/cascade: a subscriber's source moving to a relay leg).
type MungerState struct {
	Started     bool
	LastSeq     uint16
	LastTS      uint32
	LastArrival int64
}

// Switch makes the next packet start a new source (call it when forwarding
// the first keyframe of a new layer). The output continues without a gap.
func (m *Munger) Switch() { m.rebase = true }

// State exports the output position.
func (m *Munger) State() MungerState {
	return MungerState{Started: m.started, LastSeq: uint16(m.outHighest), LastTS: uint32(m.outHighestTS), LastArrival: m.lastArrival}
}

// Seed continues a stream exported with State: the next packet is re-based
// to follow s.
func (m *Munger) Seed(s MungerState) {
	*m = Munger{}
	if !s.Started {
		return
	}
	m.started = true
	m.rebase = true
	m.outHighest = seqBase + uint64(s.LastSeq)
	m.outHighestTS = tsBase + uint64(s.LastTS)
	m.lastArrival = s.LastArrival
}

// unwrap16 extends a 16-bit value next to the extended reference ref.
func unwrap16(v uint16, ref uint64) uint64 {
	return uint64(int64(ref) + int64(int16(v-uint16(ref))))
}

// unwrap32 extends a 32-bit value next to the extended reference ref.
func unwrap32(v uint32, ref uint64) uint64 {
	return uint64(int64(ref) + int64(int32(v-uint32(ref))))
}

func (m *Munger) markSeen(back uint64) {
	m.seen[back/64] |= 1 << (back % 64)
}

func (m *Munger) isSeen(back uint64) bool {
	return m.seen[back/64]&(1<<(back%64)) != 0
}

// shiftSeen moves the window forward by n packets.
func (m *Munger) shiftSeen(n uint64) {
	if n >= seenBits {
		m.seen = [seenWords]uint64{}
		return
	}
	words, bits := n/64, n%64
	for i := seenWords - 1; i >= 0; i-- {
		var v uint64
		if j := i - int(words); j >= 0 {
			v = m.seen[j] << bits
			if bits != 0 && j-1 >= 0 {
				v |= m.seen[j-1] >> (64 - bits)
			}
		}
		m.seen[i] = v
	}
}

// Update classifies in and, when the result is Forwarded, returns the
// rewritten sequence number and timestamp.
func (m *Munger) Update(in MungeIn) (MungeOut, MungeResult) {
	if !m.started || m.rebase {
		return m.startSource(in)
	}
	ext := unwrap16(in.Seq, m.inHighest)
	extTS := unwrap32(in.TS, m.inHighestTS)
	var res MungeResult
	switch {
	case ext > m.inHighest:
		n := ext - m.inHighest
		res = Contiguous
		if n > 1 {
			res = Gap
		}
		m.shiftSeen(n)
		m.markSeen(0)
		m.inHighest = ext
		m.inHighestTS = extTS
		m.outHighest = ext - m.seqOffset
		m.outHighestTS = extTS - m.tsOffset
		m.lastArrival = in.Arrival
	case ext < m.inStart || m.inHighest-ext >= seenBits:
		return MungeOut{}, TooOld
	default:
		back := m.inHighest - ext
		if m.isSeen(back) {
			return MungeOut{}, Duplicate
		}
		m.markSeen(back)
		res = OutOfOrder
	}
	return MungeOut{Seq: uint16(ext - m.seqOffset), TS: uint32(extTS - m.tsOffset)}, res
}

func (m *Munger) startSource(in MungeIn) (MungeOut, MungeResult) {
	ext := seqBase + uint64(in.Seq)
	extTS := tsBase + uint64(in.TS)
	res := Contiguous
	if !m.started {
		// First packet ever: keep the publisher's numbering.
		m.started = true
		m.seqOffset, m.tsOffset = 0, 0
		m.outHighest, m.outHighestTS = ext, extTS
	} else {
		res = Switched
		var step uint64 = 1
		if in.ClockRate > 0 && in.Arrival > m.lastArrival {
			step = uint64(in.Arrival-m.lastArrival) * uint64(in.ClockRate) / 1e9
			if step == 0 {
				step = 1
			}
		}
		m.outHighest++
		m.outHighestTS += step
		m.seqOffset = ext - m.outHighest
		m.tsOffset = extTS - m.outHighestTS
	}
	m.rebase = false
	m.inStart, m.inHighest, m.inHighestTS = ext, ext, extTS
	m.seen = [seenWords]uint64{}
	m.markSeen(0)
	m.lastArrival = in.Arrival
	return MungeOut{Seq: uint16(m.outHighest), TS: uint32(m.outHighestTS)}, res
}
