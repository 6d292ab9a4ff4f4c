package state

import "time"

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
		if old := s.edge(e.ID); old != nil {
			e.CreateIndex = old.CreateIndex
			e.RegisteredAt = old.RegisteredAt
		} else {
			e.CreateIndex = index
		}
		e.Up = true
		e.ModifyIndex = index
		s.put(tEdges, &e)
		s.bump("edges", index)
		return e.clone(), nil
	})
	register(CmdMarkEdgeDown, func(s *Store, index uint64, c *MarkEdgeDown) (any, error) {
		e := s.edge(c.ID)
		if e == nil {
			return nil, errf(CodeNotFound, "edge %q not found", c.ID)
		}
		if e.Up {
			e = e.clone()
			e.Up = false
			e.ChangedAt = c.At
			e.ModifyIndex = index
			s.put(tEdges, e)
			s.bump("edges", index)
		}
		s.dropEdgeEverywhere(index, c.ID, c.At)
		return e.clone(), nil
	})
	register(CmdSetEdgeDraining, func(s *Store, index uint64, c *SetEdgeDraining) (any, error) {
		e := s.edge(c.ID)
		if e == nil {
			return nil, errf(CodeNotFound, "edge %q not found", c.ID)
		}
		if e.Draining != c.Draining {
			e = e.clone()
			e.Draining = c.Draining
			e.ChangedAt = c.At
			e.ModifyIndex = index
			s.put(tEdges, e)
			s.bump("edges", index)
		}
		return e.clone(), nil
	})
}

func (s *Store) edge(id string) *Edge { return one[*Edge](s, tEdges, "id", id) }

// Edges lists every edge by id.
func (s *Store) Edges() []*Edge {
	out := []*Edge{}
	for _, e := range all[*Edge](s.iter(tEdges, "id", false)) {
		out = append(out, e.clone())
	}
	return out
}

// Edge returns one edge.
func (s *Store) Edge(id string) (*Edge, bool) {
	e := s.edge(id)
	if e == nil {
		return nil, false
	}
	return e.clone(), true
}
