package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/hashicorp/memberlist"

	"github.com/meridian-video/meridian/shared/edgeapi"
)

// Meta is what an edge tells its region, carried in memberlist node meta.
type Meta struct {
	ID          string
	Region      string
	InternalURL string // http(s)://host:port of the edge
	Capacity    int
	Load        edgeapi.Load // participants, tracks, rooms, cpu, egressBps
	Draining    bool
}

// MetaVersion is the first byte of every encoded meta.
const MetaVersion byte = 1

// MetaMaxSize is memberlist's limit for node meta (512 bytes).
const MetaMaxSize = memberlist.MetaMaxSize

// Errors of EncodeMeta and DecodeMeta.
var (
	ErrMetaTooLarge = errors.New("gossip: meta too large")
	ErrMetaVersion  = errors.New("gossip: unknown meta version")
	ErrMetaInvalid  = errors.New("gossip: invalid meta")
)

// wireMeta is version 1 of the meta: one version byte, then compact JSON with
// one-letter keys. A decoder ignores keys it does not know, so fields may be
// added within version 1; changing or removing one needs version 2 (and
// members that cannot decode a meta refuse its node, see AliveDelegate).
type wireMeta struct {
	ID           string `json:"i"`
	Region       string `json:"r"`
	InternalURL  string `json:"u,omitempty"`
	Capacity     int    `json:"c,omitempty"`
	Participants int    `json:"p,omitempty"`
	Tracks       int    `json:"t,omitempty"`
	Rooms        int    `json:"m,omitempty"`
	CPUMilli     int64  `json:"l,omitempty"` // CPU in thousandths
	EgressBps    int64  `json:"e,omitempty"`
	Draining     bool   `json:"d,omitempty"`
	// Leaving is set by Pool.Leave just before memberlist's leave message:
	// memberlist v0.7.0 does not tell NotifyLeave whether a member left or
	// died, so a member whose last meta says leaving is reported "left".
	Leaving bool `json:"x,omitempty"`
	// Gen counts the member's meta publications; reported as
	// Member.Incarnation.
	Gen uint32 `json:"g,omitempty"`
}

func toWire(m Meta) (wireMeta, error) {
	if math.IsNaN(m.Load.CPU) || math.IsInf(m.Load.CPU, 0) || math.Abs(m.Load.CPU) > 1e12 {
		return wireMeta{}, fmt.Errorf("%w: CPU %v", ErrMetaInvalid, m.Load.CPU)
	}
	return wireMeta{
		ID:           m.ID,
		Region:       m.Region,
		InternalURL:  m.InternalURL,
		Capacity:     m.Capacity,
		Participants: m.Load.Participants,
		Tracks:       m.Load.Tracks,
		Rooms:        m.Load.Rooms,
		CPUMilli:     int64(math.Round(m.Load.CPU * 1000)),
		EgressBps:    m.Load.EgressBps,
		Draining:     m.Draining,
	}, nil
}

func (w wireMeta) meta() Meta {
	return Meta{
		ID:          w.ID,
		Region:      w.Region,
		InternalURL: w.InternalURL,
		Capacity:    w.Capacity,
		Load: edgeapi.Load{
			Participants: w.Participants,
			Tracks:       w.Tracks,
			Rooms:        w.Rooms,
			CPU:          float64(w.CPUMilli) / 1000,
			EgressBps:    w.EgressBps,
		},
		Draining: w.Draining,
	}
}

func encodeWire(w wireMeta) ([]byte, error) {
	if w.ID == "" || w.Region == "" {
		return nil, fmt.Errorf("%w: empty ID or Region", ErrMetaInvalid)
	}
	js, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetaInvalid, err)
	}
	b := make([]byte, 0, 1+len(js))
	b = append(b, MetaVersion)
	b = append(b, js...)
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	return b, nil
}

func decodeWire(b []byte) (wireMeta, error) {
	if len(b) == 0 {
		return wireMeta{}, fmt.Errorf("%w: empty", ErrMetaInvalid)
	}
	if b[0] != MetaVersion {
		return wireMeta{}, fmt.Errorf("%w %d", ErrMetaVersion, b[0])
	}
	var w wireMeta
	if err := json.Unmarshal(b[1:], &w); err != nil {
		return wireMeta{}, fmt.Errorf("%w: %v", ErrMetaInvalid, err)
	}
	if w.ID == "" || w.Region == "" {
		return wireMeta{}, fmt.Errorf("%w: empty ID or Region", ErrMetaInvalid)
	}
	return w, nil
}

// EncodeMeta returns the versioned compact form of m (first byte MetaVersion,
// then JSON). CPU is carried in thousandths. It fails with ErrMetaTooLarge
// above MetaMaxSize bytes, and with ErrMetaInvalid for an empty ID or Region
// or a CPU that is not a finite number.
func EncodeMeta(m Meta) ([]byte, error) {
	w, err := toWire(m)
	if err != nil {
		return nil, err
	}
	return encodeWire(w)
}

// DecodeMeta parses what EncodeMeta produced. It fails with ErrMetaVersion for
// a version it does not know and ErrMetaInvalid for anything else it cannot
// read. b is not retained.
func DecodeMeta(b []byte) (Meta, error) {
	w, err := decodeWire(b)
	if err != nil {
		return Meta{}, err
	}
	return w.meta(), nil
}
