package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// newFlagSet builds a flag set whose flags also read MERIDIAN_<NAME>
// environment variables and an optional --config YAML file. Precedence:
// command line > environment > config file > default.
func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: meridian %s\n\n%s\n\nflags (each also settable as MERIDIAN_<FLAG> with - as _, or in a --config YAML file):\n", name, usage)
		fs.PrintDefaults()
	}
	fs.String("config", "", "YAML file with flag values (keys are flag names)")
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fileVals := map[string]any{}
	if path := fs.Lookup("config").Value.String(); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(b, &fileVals); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		for k, v := range fileVals {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config %s: unknown setting %q", path, k)
			}
			if err := checkConfigValue(k, v); err != nil {
				return fmt.Errorf("config %s: %w", path, err)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "MERIDIAN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
			return
		}
		if v, ok := fileVals[f.Name]; ok {
			var s string
			switch t := v.(type) {
			case []any:
				parts := make([]string, len(t))
				for i, p := range t {
					parts[i] = fmt.Sprint(p)
				}
				s = strings.Join(parts, ",")
			default:
				s = fmt.Sprint(t)
			}
			if e := f.Value.Set(s); e != nil {
				err = fmt.Errorf("config %s: %w", f.Name, e)
			}
		}
	})
	return err
}

// checkConfigValue refuses what no flag can hold: a setting without a
// value, a mapping, or a list of anything but scalars (fmt.Sprint would turn
// them into "<nil>" or "map[…]" and a string flag would take it).
func checkConfigValue(key string, v any) error {
	switch t := v.(type) {
	case nil:
		return fmt.Errorf("setting %q has no value", key)
	case map[string]any:
		return fmt.Errorf("setting %q must be a single value or a list of values, not a mapping", key)
	case []any:
		for _, e := range t {
			switch e.(type) {
			case nil, map[string]any, []any:
				return fmt.Errorf("setting %q must be a single value or a list of values (an item is %v)", key, e)
			}
		}
	}
	return nil
}

// listFlag collects comma-separated or repeated values.
// repeatFlag collects each occurrence whole (values that contain commas).
type repeatFlag []string

func (l *repeatFlag) String() string { return strings.Join(*l, " ") }
func (l *repeatFlag) Set(v string) error {
	if v = strings.TrimSpace(v); v != "" {
		*l = append(*l, v)
	}
	return nil
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// subcommand picks the subcommand of a command that has several (keys,
// rooms, certs) before any flag is read or file opened: -h, --help or help
// print which there are (flag.ErrHelp, as a flag set answers -h), and a
// missing or unknown one is an error naming them.
func subcommand(cmd string, args []string, subs ...string) (string, []string, error) {
	choices := strings.Join(subs[:len(subs)-1], ", ") + " or " + subs[len(subs)-1]
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprintf(os.Stderr, "usage: meridian %s <%s> [flags]\n\nRun \"meridian %s <subcommand> -h\" for the flags of one.\n",
				cmd, strings.Join(subs, "|"), cmd)
			return "", nil, flag.ErrHelp
		}
		if slices.Contains(subs, args[0]) {
			return args[0], args[1:], nil
		}
		return "", nil, fmt.Errorf("%s: unknown subcommand %q (%s)", cmd, args[0], choices)
	}
	return "", nil, fmt.Errorf("%s: missing subcommand (%s)", cmd, choices)
}
