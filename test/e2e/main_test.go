package e2e

import (
	"os"
	"testing"

	"github.com/meridian-video/meridian/test/procs"
)

// TestMain removes the meridian binary procs.Bin builds for the tests that
// run real processes, so a run leaves nothing behind in the temp directory.
func TestMain(m *testing.M) { os.Exit(procs.Main(m)) }
