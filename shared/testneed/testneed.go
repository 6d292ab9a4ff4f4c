// Package testneed decides what a test does when something it needs from
// the machine is missing (a tool such as ffmpeg or Chromium, network
// namespaces, IPv6 loopback): it skips on a developer's machine, and fails
// under CI, which installs every such part and says so by setting
// MERIDIAN_REQUIRE_<NAME>=1, so a broken install cannot pass as skips.
package testneed

import (
	"os"
	"testing"
)

// Missing ends the test for a missing requirement named name (the
// MERIDIAN_REQUIRE_ suffix, e.g. "FFMPEG"): a failure when
// MERIDIAN_REQUIRE_<name>=1, a skip otherwise. why says what is missing.
func Missing(t testing.TB, name, why string) {
	t.Helper()
	env := "MERIDIAN_REQUIRE_" + name
	if os.Getenv(env) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", why, env)
	}
	t.Skipf("%s; set %s=1 to fail instead of skipping", why, env)
}
