package geo

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// FenceTable maps VideoSDK geoFence codes (a room's "geoFence") to the pin
// policy they stand for in this deployment.
type FenceTable map[string]Policy

// DefaultFences is the built-in table. It returns a new map on every call so
// that a caller overriding entries never changes anyone else's table.
func DefaultFences() FenceTable {
	j := func(js ...string) Policy { return Policy{Jurisdictions: js} }
	return FenceTable{
		"eu001":  j("eu"),
		"uk001":  j("uk"),
		"us001":  j("us"),
		"us002":  j("us"),
		"in001":  j("in"),
		"in002":  j("in"),
		"in003":  j("in"),
		"sg001":  j("sg"),
		"sg002":  j("sg"),
		"aus001": j("au"),
		"uae001": j("ae"),
	}
}

// ParseFences reads the operator's override flag, e.g.
//
//	eu001=jurisdiction:eu,us001=region:us-east+us-west
//
// and returns the default table with those entries replaced or added. An
// empty spec gives the defaults. A code given twice is an error rather than
// "last wins": in a flag that long, a repeat is far likelier a typo than a
// wish.
func ParseFences(spec string) (FenceTable, error) {
	t := DefaultFences()
	seen := map[string]bool{}
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // tolerate "a=b," and ", " in hand-written flags
		}
		code, p, err := parseFence(entry)
		if err != nil {
			return nil, fmt.Errorf("geo: fence %q: %w", entry, err)
		}
		if seen[code] {
			return nil, fmt.Errorf("geo: fence %q: code %s given twice", entry, code)
		}
		seen[code] = true
		t[code] = p
	}
	return t, nil
}

func parseFence(entry string) (string, Policy, error) {
	code, value, ok := strings.Cut(entry, "=")
	if !ok {
		return "", Policy{}, errors.New("want code=region:a+b or code=jurisdiction:x+y")
	}
	code = strings.TrimSpace(code)
	if err := checkFenceCode(code); err != nil {
		return "", Policy{}, err
	}
	kind, list, ok := strings.Cut(strings.TrimSpace(value), ":")
	if !ok {
		return "", Policy{}, errors.New("want region:… or jurisdiction:… after '='")
	}
	kind = strings.TrimSpace(kind)
	if kind != "region" && kind != "jurisdiction" {
		return "", Policy{}, fmt.Errorf("unknown kind %q (want region or jurisdiction)", kind)
	}
	var vals []string
	for v := range strings.SplitSeq(list, "+") {
		v = strings.TrimSpace(v)
		if kind == "jurisdiction" {
			v = strings.ToLower(v) // jurisdictions are lowercase everywhere (Catalog.Add)
		}
		if err := checkRegionName(v); err != nil {
			return "", Policy{}, fmt.Errorf("bad %s %q", kind, v)
		}
		if !slices.Contains(vals, v) {
			vals = append(vals, v)
		}
	}
	if kind == "region" {
		return code, Policy{Regions: vals}, nil
	}
	return code, Policy{Jurisdictions: vals}, nil
}

// checkFenceCode accepts what VideoSDK uses: lowercase letters and digits.
func checkFenceCode(code string) error {
	if code == "" || len(code) > maxNameLen {
		return fmt.Errorf("bad code %q", code)
	}
	for _, ch := range code {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9') {
			return fmt.Errorf("bad code %q: only lowercase letters and digits", code)
		}
	}
	return nil
}

// Policy returns the pin policy of a geoFence code. Codes are matched exactly
// (they are lowercase); an unknown code is for the caller to refuse, never
// to treat as "anywhere".
func (t FenceTable) Policy(code string) (Policy, bool) {
	p, ok := t[code]
	return p, ok
}

// Codes lists the known codes, sorted, for help texts and error messages.
func (t FenceTable) Codes() []string {
	return slices.Sorted(maps.Keys(t))
}

// AllowedByAll reports whether r satisfies every policy: the room's pin, its
// geoFence and the API key's pin all apply at once. Empty policies allow all.
func AllowedByAll(r Region, ps ...Policy) bool {
	for _, p := range ps {
		if !p.Allows(r) {
			return false
		}
	}
	return true
}

// DescribeAll renders the non-empty policies joined with " and ", or
// "any region" when none restricts anything, for "no edge allowed" errors.
func DescribeAll(ps ...Policy) string {
	var parts []string
	for _, p := range ps {
		if !p.Empty() {
			parts = append(parts, p.String())
		}
	}
	if len(parts) == 0 {
		return "any region"
	}
	return strings.Join(parts, " and ")
}

// AnyAllowed reports whether some region satisfies every policy: a region
// the catalog knows, one of extra (say, the regions edges registered in),
// or one a policy names. Policies that no region can satisfy together (a
// key pinned to eu and a room fenced to us) would refuse every join.
func (c *Catalog) AnyAllowed(extra []string, ps ...Policy) bool {
	names := slices.Clone(extra)
	c.mu.RLock()
	for name := range c.regions {
		names = append(names, name)
	}
	c.mu.RUnlock()
	for _, p := range ps {
		names = append(names, p.Regions...)
	}
	for _, name := range names {
		if AllowedByAll(c.Lookup(name), ps...) {
			return true
		}
	}
	return false
}
