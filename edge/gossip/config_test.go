package gossip

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.MetaEvery != 2*time.Second || c.Timers != TimersLAN || c.BindPort != 7946 {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	if err := c.Validate(); err == nil {
		t.Error("DefaultConfig without NodeID and Region validated")
	}
	c.NodeID, c.Region = "edge-1", "eu"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"NodeID", func(c *Config) { c.NodeID = "" }},
		{"NodeID", func(c *Config) { c.NodeID = strings.Repeat("a", MaxIDLen+1) }},
		{"NodeID", func(c *Config) { c.NodeID = "a b" }},
		{"Region", func(c *Config) { c.Region = "-eu" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "localhost" }},
		{"BindPort", func(c *Config) { c.BindPort = 70000 }},
		{"AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "edge.example" }},
		{"AdvertiseAddr", func(c *Config) { c.BindAddr = "::" }},
		{"AdvertisePort", func(c *Config) { c.AdvertisePort = -1 }},
		{"Seeds[1]", func(c *Config) { c.Seeds = []string{"10.0.0.1:7946", "10.0.0.2"} }},
		{"Seeds[0]", func(c *Config) { c.Seeds = []string{":7946"} }},
		{"SecretKey", func(c *Config) { c.SecretKey = []byte("short") }},
		{"MetaEvery", func(c *Config) { c.MetaEvery = 0 }},
		{"MetaRefresh", func(c *Config) { c.MetaRefresh = time.Second }},
		{"MetaMinInterval", func(c *Config) { c.MetaMinInterval = -time.Second }},
		{"MetaMinInterval", func(c *Config) { c.MetaMinInterval = c.MetaRefresh + time.Second }},
		{"ForgetAfter", func(c *Config) { c.ForgetAfter = 0 }},
		{"Timers", func(c *Config) { c.Timers = "wan" }},
	} {
		c := DefaultConfig()
		c.NodeID, c.Region = "edge-1", "eu"
		tc.edit(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	c := DefaultConfig()
	c.NodeID, c.Region = strings.Repeat("a", MaxIDLen), "eu-west.1_b"
	c.BindAddr, c.AdvertiseAddr = "::", "2001:db8::7"
	c.Seeds = []string{"[2001:db8::8]:7946", "edge-2.internal:7946"}
	c.SecretKey = make([]byte, 24)
	c.Timers = ""
	if err := c.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New(Config{}): %v", err)
	}
}

func TestParseSuspect(t *testing.T) {
	for line, want := range map[string]string{
		"[INFO] memberlist: Suspect edge-2 has failed, no acks received": "edge-2",
		"[INFO] memberlist: Suspect  has failed, no acks received":       "",
		"[DEBUG] memberlist: Failed UDP ping: edge-2 (timeout reached)":  "",
		"[INFO] memberlist: Marking edge-2 as failed, suspect timeout":   "",
	} {
		got, ok := parseSuspect(line)
		if got != want || ok != (want != "") {
			t.Errorf("parseSuspect(%q) = %q, %v", line, got, ok)
		}
	}
}

func TestTableSuspectExpiryAndForget(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := newTable("self", func() time.Time { return now })
	w := wireMeta{ID: "b", Region: "eu", Gen: 3}
	if !tb.alive("b", "10.0.0.2:7946", w, true) {
		t.Fatal("join not a change")
	}
	if tb.alive("b", "10.0.0.2:7946", w, true) {
		t.Error("same alive twice is a change")
	}
	if !tb.suspect("b", now.Add(5*time.Second)) {
		t.Fatal("suspect not a change")
	}
	if tb.suspect("self", now.Add(time.Second)) {
		t.Error("self marked suspect")
	}
	now = now.Add(4 * time.Second)
	if tb.housekeep(time.Minute) {
		t.Error("suspicion ended early")
	}
	now = now.Add(2 * time.Second)
	if !tb.housekeep(time.Minute) {
		t.Error("suspicion did not expire")
	}
	if m, _ := tb.member("b"); m.State != StateAlive || !m.Since.Equal(now) {
		t.Errorf("after expiry: %+v", m)
	}
	tb.suspect("b", now.Add(time.Hour))
	if !tb.proofOfLife("b") {
		t.Error("ack did not end the suspicion")
	}

	// A member whose last meta said leaving is left, otherwise dead.
	tb.alive("c", "10.0.0.3:7946", wireMeta{ID: "c", Region: "eu", Leaving: true}, true)
	tb.gone("c", "10.0.0.3:7946", wireMeta{}, false, false)
	tb.gone("b", "10.0.0.2:7946", w, true, false)
	if m, _ := tb.member("c"); m.State != StateLeft {
		t.Errorf("c: %s, want left", m.State)
	}
	if m, _ := tb.member("b"); m.State != StateDead || m.Meta.ID != "b" {
		t.Errorf("b: %+v, want dead with its meta", m)
	}
	now = now.Add(time.Minute + time.Second)
	if !tb.housekeep(time.Minute) {
		t.Error("nothing forgotten")
	}
	if ms := tb.members(); len(ms) != 0 {
		t.Errorf("after ForgetAfter: %+v", ms)
	}
}
