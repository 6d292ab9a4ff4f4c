package testneed

import (
	"fmt"
	"runtime"
	"testing"
)

// recorder is a testing.TB that records how the test would have ended.
type recorder struct {
	testing.TB
	ended string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended = "fail: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.ended = "skip: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func ending(name, why string) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Missing(r, name, why)
		r.ended = "went on"
	}()
	<-done
	return r.ended
}

func TestMissingSkipsUnlessRequired(t *testing.T) {
	t.Setenv("MERIDIAN_REQUIRE_WIDGET", "")
	if got, want := ending("WIDGET", "widget not found"), "skip: widget not found; set MERIDIAN_REQUIRE_WIDGET=1 to fail instead of skipping"; got != want {
		t.Errorf("without the variable: %q, want %q", got, want)
	}
	t.Setenv("MERIDIAN_REQUIRE_WIDGET", "1")
	if got, want := ending("WIDGET", "widget not found"), "fail: widget not found; MERIDIAN_REQUIRE_WIDGET=1 makes this a failure"; got != want {
		t.Errorf("with MERIDIAN_REQUIRE_WIDGET=1: %q, want %q", got, want)
	}
	// Another part's variable does not make this one required.
	t.Setenv("MERIDIAN_REQUIRE_WIDGET", "")
	t.Setenv("MERIDIAN_REQUIRE_GADGET", "1")
	if got := ending("WIDGET", "widget not found"); got[:5] != "skip:" {
		t.Errorf("with only MERIDIAN_REQUIRE_GADGET=1: %q, want a skip", got)
	}
}
