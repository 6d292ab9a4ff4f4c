package geo

import (
	"math"
	"testing"
)

func TestPolicyAllows(t *testing.T) {
	c := NewCatalog()
	paris, montreal, custom := c.Lookup("eu-west"), c.Lookup("ca-east"), c.Lookup("onprem-1")
	cases := []struct {
		p    Policy
		r    Region
		want bool
	}{
		{Policy{}, montreal, true},
		{Policy{Jurisdictions: []string{"eu"}}, paris, true},
		{Policy{Jurisdictions: []string{"eu"}}, montreal, false},
		{Policy{Regions: []string{"eu-west"}}, paris, true},
		{Policy{Regions: []string{"eu-west"}, Jurisdictions: []string{"ca"}}, paris, false},
		{Policy{Jurisdictions: []string{"onprem-1"}}, custom, true},
	}
	for i, tc := range cases {
		if got := tc.p.Allows(tc.r); got != tc.want {
			t.Errorf("%d: %v allows %s = %v", i, tc.p, tc.r.Name, got)
		}
	}
}

func TestDistance(t *testing.T) {
	c := NewCatalog()
	d := DistanceKm(c.Lookup("eu-west"), c.Lookup("ca-east"))
	if d < 5400 || d > 5600 {
		t.Fatalf("Paris–Montréal = %.0f km", d)
	}
	if !math.IsNaN(DistanceKm(c.Lookup("x"), c.Lookup("eu-west"))) {
		t.Fatal("unknown region has a distance")
	}
}
