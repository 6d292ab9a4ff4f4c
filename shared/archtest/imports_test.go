package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/meridian-video/meridian"

// deps lists the transitive in-module dependencies of every package matching pattern.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	pkgs, err := exec.Command("go", "list", pattern).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	res := map[string][]string{}
	for _, p := range strings.Fields(string(pkgs)) {
		d, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}`, p).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", p, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(d))
		for sc.Scan() {
			if dep := sc.Text(); strings.HasPrefix(dep, module+"/") && dep != p {
				res[p] = append(res[p], dep)
			}
		}
	}
	return res
}

func TestImportRules(t *testing.T) {
	rules := []struct {
		pattern   string
		forbidden []string
		allowOnly []string
	}{
		{pattern: module + "/edge/...", forbidden: []string{module + "/control/"}},
		{pattern: module + "/control/...", forbidden: []string{module + "/edge/"}},
		{pattern: module + "/geo/...", forbidden: []string{module + "/control/", module + "/edge/"}},
		{pattern: module + "/shared/...", allowOnly: []string{module + "/shared/"}},
	}
	for _, r := range rules {
		for pkg, ds := range deps(t, r.pattern) {
			for _, d := range ds {
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, f) {
						t.Errorf("%s imports %s (forbidden by ARCHITECTURE.md)", pkg, d)
					}
				}
				if r.allowOnly != nil {
					ok := false
					for _, a := range r.allowOnly {
						ok = ok || strings.HasPrefix(d, a)
					}
					if !ok {
						t.Errorf("%s imports %s: shared may import nothing of ours outside shared", pkg, d)
					}
				}
			}
		}
	}
}
