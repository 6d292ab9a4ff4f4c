package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// controlFlagSet is the flag set `meridian control` parses, output discarded.
func controlFlagSet() (*flag.FlagSet, *controlFlags) {
	fs := newFlagSet("control", "")
	fs.SetOutput(io.Discard)
	var f controlFlags
	f.register(fs, false)
	return fs, &f
}

func parseConfigFile(t testing.TB, content string, args ...string) (*flag.FlagSet, error) {
	path := filepath.Join(t.TempDir(), "meridian.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, _ := controlFlagSet()
	return fs, parseFlags(fs, append([]string{"--config", path}, args...))
}

func TestConfigFile(t *testing.T) {
	cases := []struct {
		name, file string
		wantErr    string            // substring; "" = accepted
		want       map[string]string // flag → value after parsing
	}{
		{"scalars and lists", "region: eu-west\nrate-limit-key: 12.5\npeers: [a=h1:7000, b=h2:7000]\n", "",
			map[string]string{"region": "eu-west", "rate-limit-key": "12.5", "peers": "a=h1:7000,b=h2:7000"}},
		{"unknown setting", "regoin: eu-west\n", `unknown setting "regoin"`, nil},
		{"a mapping is not a value", "region: {name: eu-west}\n", `"region" must be a single value or a list of values, not a mapping`, nil},
		{"a nested list is not a value", "peers: [[a=h1:7000]]\n", `"peers" must be a single value or a list of values (an item is`, nil},
		{"no value", "region:\n", `"region" has no value`, nil},
		{"not a mapping", "- region\n", "config", nil},
		{"wrong type for the flag", "rate-limit-key: fast\n", "rate-limit-key", nil},
		{"empty file", "", "", map[string]string{"region": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, err := parseConfigFile(t, c.file)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range c.want {
				if got := fs.Lookup(k).Value.String(); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	// The command line wins over the file.
	fs, err := parseConfigFile(t, "region: eu-west\n", "--region", "ca-east")
	if err != nil || fs.Lookup("region").Value.String() != "ca-east" {
		t.Fatalf("region %q (err %v), want the command line's ca-east", fs.Lookup("region").Value.String(), err)
	}
}

// FuzzConfigFile feeds arbitrary files to --config: parsing never panics,
// and a file that is accepted only ever sets known flags to the scalar (or
// comma-joined list of scalars) it wrote — nothing like "map[…]" or
// "<nil>" reaches a flag.
func FuzzConfigFile(f *testing.F) {
	f.Add("region: eu-west\nrate-limit-key: 12.5\n")
	f.Add("peers: [a=h1:7000, b=h2:7000]\nbootstrap: true\n")
	f.Add("region: {a: b}\n")
	f.Add("region:\n")
	f.Add("region: &x eu\nid: *x\n")
	f.Add("? [a]\n: b\n")
	f.Add("region: !!binary aGVsbG8=\n")
	f.Fuzz(func(t *testing.T, content string) {
		if len(content) > 4096 {
			return
		}
		fs, err := parseConfigFile(t, content)
		if err != nil {
			return
		}
		var vals map[string]any
		if yaml.Unmarshal([]byte(content), &vals) != nil {
			t.Fatalf("accepted a file yaml cannot decode: %q", content)
		}
		for k, v := range vals {
			fl := fs.Lookup(k)
			if fl == nil {
				t.Fatalf("accepted unknown setting %q", k)
			}
			got := fl.Value.String()
			switch v := v.(type) {
			case map[string]any, nil:
				t.Fatalf("accepted %q = %#v, set to %q", k, v, got)
			case []any:
				for _, e := range v {
					switch e.(type) {
					case map[string]any, []any, nil:
						t.Fatalf("accepted a list with %#v for %q", e, k)
					}
				}
			}
			if strings.Contains(got, "map[") || strings.Contains(got, "<nil>") {
				t.Fatalf("%q set to %q from %q", k, got, content)
			}
		}
	})
}
