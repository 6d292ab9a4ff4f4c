package sfu

import (
	"slices"
	"sort"
)

// Audio levels (RFC 6464) are -dBov, 0 (loudest) .. 127 (silence). We work
// with loudness = 127 - level.
const (
	speakerThreshold = 40.0 // smoothed loudness above which someone is speaking (≈ -87 dBov)
	speakerSmoothing = 0.5  // weight of the newest interval
	maxSpeakers      = 3
)

// levelSample is one participant's audio over one detector interval.
type levelSample struct {
	sum   uint64 // of loudness values
	count uint64
}

// speakerDetector turns per-interval audio levels into an ordered list of
// active speakers. Pure; the room's housekeeping goroutine owns it.
type speakerDetector struct {
	smoothed map[string]float64
	last     []string
}

// Update folds one interval in and returns the speakers, loudest first, and
// whether the list changed since the previous call.
func (d *speakerDetector) Update(samples map[string]levelSample) ([]string, bool) {
	if d.smoothed == nil {
		d.smoothed = make(map[string]float64)
	}
	for id := range d.smoothed {
		if _, ok := samples[id]; !ok {
			samples[id] = levelSample{}
		}
	}
	for id, s := range samples {
		var avg float64
		if s.count > 0 {
			avg = float64(s.sum) / float64(s.count)
		}
		v := speakerSmoothing*avg + (1-speakerSmoothing)*d.smoothed[id]
		if v < 1 && s.count == 0 {
			delete(d.smoothed, id)
			continue
		}
		d.smoothed[id] = v
	}
	var list []string
	for id, v := range d.smoothed {
		if v >= speakerThreshold {
			list = append(list, id)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := d.smoothed[list[i]], d.smoothed[list[j]]
		if a != b {
			return a > b
		}
		return list[i] < list[j]
	})
	if len(list) > maxSpeakers {
		list = list[:maxSpeakers]
	}
	if slices.Equal(list, d.last) {
		return list, false
	}
	d.last = list
	return list, true
}

// forget drops a participant that left.
func (d *speakerDetector) forget(id string) { delete(d.smoothed, id) }
