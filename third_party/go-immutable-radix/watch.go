package iradix

// This file is Meridian's change to go-immutable-radix v1.3.1 (see
// PATCHES.md); the rest of the package is upstream's, with every
// `make(chan struct{})` for a node or leaf replaced by newMutateCh and the
// channel closes made nil-safe.

import "sync/atomic"

// watchChannelsOff is set once, before any tree is built, by a process
// that never watches its trees.
var watchChannelsOff atomic.Bool

// DisableWatchChannels makes every node and leaf created from now on, in
// every tree of this process, carry no mutation channel. go-memdb gives
// each radix node and leaf a channel that a commit closes so watchers
// (memdb.WatchSet, WatchCh) wake up; a process that never watches pays
// for them anyway: an unbuffered channel is a 96-byte heap object, about
// nine per row in a table with four indexes, and every copied node
// allocates a new one. With the channels off, watch channels returned by
// the trees are nil (a receive blocks forever: a watch never fires), and
// committing a transaction that tracks mutations closes nothing.
//
// Call it before building any tree; it cannot be undone.
func DisableWatchChannels() { watchChannelsOff.Store(true) }

// WatchChannelsDisabled reports whether DisableWatchChannels was called.
func WatchChannelsDisabled() bool { return watchChannelsOff.Load() }

// newMutateCh is a new node's or leaf's mutation channel: nil once
// DisableWatchChannels was called.
func newMutateCh() chan struct{} {
	if watchChannelsOff.Load() {
		return nil
	}
	return make(chan struct{})
}

// closeWatch closes a mutation channel; a node made without one has
// nobody to wake.
func closeWatch(ch chan struct{}) {
	if ch != nil {
		close(ch)
	}
}
