package state

import (
	"sort"
	"time"
)

// Edge is a registered edge node. Load is not replicated (it changes every
// few seconds); liveness transitions are.
type Edge struct {
	ID          string   `json:"id"`
	Region      string   `json:"region"`
	SignalURL   string   `json:"signalUrl"`
	InternalURL string   `json:"internalUrl"`
	TURNURLs    []string `json:"turnUrls"`
	STUNURLs    []string `json:"stunUrls"`
	Capacity    int      `json:"capacity"`
	Latitude    float64  `json:"lat,omitempty"`
	Longitude   float64  `json:"lon,omitempty"`
	Version     string   `json:"version,omitempty"`
	// GossipAddr is the edge's memberlist address (host:port); the
	// registration reply hands it to the region's other edges as a seed.
	GossipAddr string `json:"gossipAddr,omitempty"`
	// PublicKey is the edge's Ed25519 identity key: relay tickets name it,
	// and a relay leg is accepted only from the holder of its private key.
	PublicKey []byte `json:"publicKey,omitempty"`
	// Draining edges keep their meetings but get no new rooms.
	Draining     bool      `json:"draining,omitempty"`
	Up           bool      `json:"up"`
	RegisteredAt time.Time `json:"registeredAt"`
	ChangedAt    time.Time `json:"changedAt"`
	CreateIndex  uint64    `json:"createIndex"`
	ModifyIndex  uint64    `json:"modifyIndex"`
}

func (e *Edge) clone() *Edge {
	c := *e
	c.TURNURLs = append([]string(nil), e.TURNURLs...)
	c.STUNURLs = append([]string(nil), e.STUNURLs...)
	c.PublicKey = append([]byte(nil), e.PublicKey...)
	return &c
}

// UpsertEdge registers or re-registers an edge; it is up afterwards.
type UpsertEdge struct {
	Edge Edge `json:"edge"`
}

// MarkEdgeDown records that an edge is gone (silent, or dead by its
// region's gossip). The same command removes it from every room placement,
// so no decision made after it can use the edge.
type MarkEdgeDown struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// SetEdgeDraining starts or stops draining an edge: no new rooms go there.
type SetEdgeDraining struct {
	ID       string    `json:"id"`
	Draining bool      `json:"draining"`
	At       time.Time `json:"at"`
}

func init() {
	register(CmdUpsertEdge, func(s *Store, index uint64, c *UpsertEdge) (any, error) {
		e := c.Edge
		if e.ID == "" || e.Region == "" {
			return nil, errf(CodeInvalid, "edge needs id and region")
		}
		if old, ok := s.edges[e.ID]; ok {
			e.CreateIndex = old.CreateIndex
			e.RegisteredAt = old.RegisteredAt
		} else {
			e.CreateIndex = index
		}
		e.Up = true
		e.ModifyIndex = index
		s.edges[e.ID] = &e
		s.bump("edges", index)
		return e.clone(), nil
	})
	register(CmdMarkEdgeDown, func(s *Store, index uint64, c *MarkEdgeDown) (any, error) {
		e, ok := s.edges[c.ID]
		if !ok {
			return nil, errf(CodeNotFound, "edge %q not found", c.ID)
		}
		if e.Up {
			e.Up = false
			e.ChangedAt = c.At
			e.ModifyIndex = index
			s.bump("edges", index)
		}
		s.dropEdgeEverywhere(index, c.ID, c.At)
		return e.clone(), nil
	})
	register(CmdSetEdgeDraining, func(s *Store, index uint64, c *SetEdgeDraining) (any, error) {
		e, ok := s.edges[c.ID]
		if !ok {
			return nil, errf(CodeNotFound, "edge %q not found", c.ID)
		}
		if e.Draining != c.Draining {
			e.Draining = c.Draining
			e.ChangedAt = c.At
			e.ModifyIndex = index
			s.bump("edges", index)
		}
		return e.clone(), nil
	})
}

// Edges lists every edge by id.
func (s *Store) Edges() []*Edge {
	out := make([]*Edge, 0, len(s.edges))
	for _, e := range s.edges {
		out = append(out, e.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Edge returns one edge.
func (s *Store) Edge(id string) (*Edge, bool) {
	e, ok := s.edges[id]
	if !ok {
		return nil, false
	}
	return e.clone(), true
}
