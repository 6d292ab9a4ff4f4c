package sfu

import "testing"

// TestStarvedLayerIsNotOffered: a simulcast layer that delivers mostly
// padding (no media bytes, few frames) is not offered to layer selection
// (selectLayersFor only picks available layers), however cheap it looks.
func TestStarvedLayerIsNotOffered(t *testing.T) {
	cases := []struct {
		name      string
		fps       [nLayers]float64
		frames    [nLayers]uint64
		wantAvail [nLayers]bool
	}{
		{"all healthy", [nLayers]float64{15, 30, 30}, [nLayers]uint64{100, 200, 200}, [nLayers]bool{true, true, true}},
		{"starved top", [nLayers]float64{15, 30, 5}, [nLayers]uint64{100, 200, 20}, [nLayers]bool{true, true, false}},
		{"padding only top", [nLayers]float64{15, 30, 0}, [nLayers]uint64{100, 200, 0}, [nLayers]bool{true, true, false}},
		{"starved middle, top fine", [nLayers]float64{30, 10, 30}, [nLayers]uint64{100, 20, 200}, [nLayers]bool{true, false, true}},
	}
	for _, tc := range cases {
		tr := testTrack(true)
		for i := 0; i < nLayers; i++ {
			l := &layer{idx: i}
			l.stats.packets.Store(500)
			l.stats.frames.Store(tc.frames[i])
			l.stats.fps.rate.Store(tc.fps[i])
			l.stats.bitrate.rate.Store(float64(1000 * (i + 1)))
			tr.layers[i] = l
		}
		avail, _ := tr.availableLayers()
		if avail != tc.wantAvail {
			t.Errorf("%s: available %v, want %v", tc.name, avail, tc.wantAvail)
		}
	}
}
