package state

// ClusterSecrets are generated once by the first leader. Private material is
// sealed with the cluster key before proposing; public halves are plain.
type ClusterSecrets struct {
	TicketPublicKey  []byte `json:"ticketPublicKey"`  // Ed25519, join tickets
	TicketPrivateEnc []byte `json:"ticketPrivateEnc"` // sealed
	WebhookRSAPubPEM string `json:"webhookRsaPubPem"` // SPKI PEM for videosdk-signature
	WebhookRSAEnc    []byte `json:"webhookRsaEnc"`    // sealed PKCS#8 DER
	TURNSecretEnc    []byte `json:"turnSecretEnc"`    // sealed TURN REST secret
	EdgeTokenHash    string `json:"edgeTokenHash,omitempty"`
}

// SetClusterSecrets stores the secrets once; later proposals are no-ops that
// return the stored value (two leaders racing at bootstrap agree on the first).
type SetClusterSecrets struct {
	Secrets ClusterSecrets `json:"secrets"`
}

// Node is a control node's HTTP address, used to forward writes to the leader.
type Node struct {
	ID       string `json:"id"`
	HTTPAddr string `json:"httpAddr"`
	// Features are what the node's binary supports beyond the commands
	// every version applies (cluster.FeatureWriteBatch); the leader uses
	// one only when every server has registered it.
	Features []string `json:"features,omitempty"`
}

// RegisterNode records (or updates) a control node.
type RegisterNode struct {
	Node Node `json:"node"`
}

func init() {
	register(CmdSetClusterSecrets, func(s *Store, index uint64, c *SetClusterSecrets) (any, error) {
		cur := s.secrets()
		if cur == nil {
			sec := c.Secrets
			cur = &sec
			s.put(tMeta, &metaRow{Name: metaSecrets, Value: cur})
			s.bump("secrets", index)
		}
		cp := *cur
		return &cp, nil
	})
	register(CmdRegisterNode, func(s *Store, index uint64, c *RegisterNode) (any, error) {
		n := c.Node
		// A registration says what its sender knows: an address, features,
		// or both; what it leaves out stays as it was.
		if old := one[*Node](s, tNodes, "id", n.ID); old != nil {
			if n.HTTPAddr == "" {
				n.HTTPAddr = old.HTTPAddr
			}
			if n.Features == nil {
				n.Features = old.Features
			}
		}
		s.put(tNodes, &n)
		s.bump("nodes", index)
		return nil, nil
	})
}

func (s *Store) secrets() *ClusterSecrets {
	if m := one[*metaRow](s, tMeta, "id", metaSecrets); m != nil {
		return m.Value.(*ClusterSecrets)
	}
	return nil
}

// Secrets returns the cluster secrets, if set.
func (s *Store) Secrets() (*ClusterSecrets, bool) {
	sec := s.secrets()
	if sec == nil {
		return nil, false
	}
	cp := *sec
	return &cp, true
}

// Node returns a control node by raft id.
func (s *Store) Node(id string) (*Node, bool) {
	n := one[*Node](s, tNodes, "id", id)
	if n == nil {
		return nil, false
	}
	cp := *n
	return &cp, true
}
