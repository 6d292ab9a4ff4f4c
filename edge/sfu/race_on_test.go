//go:build race

package sfu

// raceEnabled: sync.Pool drops items at random under the race detector, so
// pooled buffers (pion's SRTP path, x/net's batch headers) allocate.
const raceEnabled = true
