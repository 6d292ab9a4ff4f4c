package gossip

import (
	"testing"
	"time"
)

// TestSetSeedsJoinsAtOnce: seeds handed over after the pool started (the
// control plane's registration reply) are tried at once, not at the next
// alone-check (5 s with production timers).
func TestSetSeedsJoinsAtOnce(t *testing.T) {
	a := localConfig("seed-a", "eu")
	a.Timers = TimersLAN
	pa := startPool(t, a)
	b := localConfig("seed-b", "eu")
	b.Timers = TimersLAN
	pb := startPool(t, b)
	time.Sleep(200 * time.Millisecond) // the joiner's first look (no seeds) is over
	start := time.Now()
	if err := pb.SetSeeds([]string{pa.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "b joins a's pool", func() (bool, string) { return sees(pa, "seed-b", StateAlive) })
	t.Logf("joined %v after SetSeeds", time.Since(start).Round(time.Millisecond))
}
