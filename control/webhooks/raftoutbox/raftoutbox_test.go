package raftoutbox_test

import (
	"strings"
	"testing"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
)

// TestOperatorWebhookChecked: the operator's --webhook URLs obey the rules
// customers' do: one with a port no connection can use, or with user info
// (shown in every project's delivery log), stops the plugin with an error
// naming the flag and the problem, without the password.
func TestOperatorWebhookChecked(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://hooks.example.com:99999/x", "port 99999 is not a TCP port"},
		{"https://ops:hunter2@hooks.example.com/x", "user info"},
		{"https://hooks.example.com/x", ""},
	} {
		c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
			cfg.GlobalWebhooks = []state.GlobalEndpoint{{URL: tc.url}}
		}})
		_, _, err := raftoutbox.Plugin(webhooks.DefaultConfig())(c.Node(0))
		switch {
		case tc.want == "" && err != nil:
			t.Fatalf("%s refused: %v", tc.url, err)
		case tc.want == "":
		case err == nil || !strings.Contains(err.Error(), "--webhook") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2"):
			t.Fatalf("%s: %v, want an error naming --webhook and %q", tc.url, err, tc.want)
		}
		c.Close()
	}
}
