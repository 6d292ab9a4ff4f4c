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
}

// RegisterNode records (or updates) a control node.
type RegisterNode struct {
	Node Node `json:"node"`
}

func init() {
	register(CmdSetClusterSecrets, func(s *Store, index uint64, c *SetClusterSecrets) (any, error) {
		if s.secrets == nil {
			sec := c.Secrets
			s.secrets = &sec
			s.bump("secrets", index)
		}
		cp := *s.secrets
		return &cp, nil
	})
	register(CmdRegisterNode, func(s *Store, index uint64, c *RegisterNode) (any, error) {
		n := c.Node
		s.nodes[n.ID] = &n
		s.bump("nodes", index)
		return nil, nil
	})
}

// Secrets returns the cluster secrets, if set.
func (s *Store) Secrets() (*ClusterSecrets, bool) {
	if s.secrets == nil {
		return nil, false
	}
	cp := *s.secrets
	return &cp, true
}

// Node returns a control node by raft id.
func (s *Store) Node(id string) (*Node, bool) {
	n, ok := s.nodes[id]
	if !ok {
		return nil, false
	}
	cp := *n
	return &cp, true
}
