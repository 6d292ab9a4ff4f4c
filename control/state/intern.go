package state

import (
	"slices"
	"sync"
)

// Interning shares equal values between rows: project ids, API keys,
// endpoints, event names and regions repeat across millions of rows, and a
// customer configures one webhook for all its rooms.
//
// Both tables hold their values strongly and start over when full (a
// generation), so they never grow past their bound and a value no row uses
// any more stays at most one generation. They do not use package unique or
// weak pointers on purpose: turning a weak pointer back into a strong one
// (unique.Make on a known value, weak.Pointer.Value) parks the goroutine
// when the collector has tried to finish marking and found more work,
// until marking ends — seconds with a 1 GB heap on a busy core. The FSM
// goroutine interns on every create, so each such collection stopped every
// write of the cluster (docs/state-store.md, "Interning without weak
// pointers").

// internLimit bounds each table. Values that repeat are met again soon
// after a new generation starts; values that do not (a participant id in
// its stats) only make generations shorter.
const internLimit = 1 << 14

// internTable is one generation of interned values by key.
type internTable[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

// store interns v under key, starting a new generation when full.
func (t *internTable[V]) store(key string, v V) {
	if len(t.m) >= internLimit {
		clear(t.m)
	}
	t.m[key] = v
}

var internedStrings = internTable[string]{m: map[string]string{}}

// intern returns a string equal to v that rows can share.
func intern(v string) string {
	if v == "" {
		return v
	}
	t := &internedStrings
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.m[v]; ok {
		return s
	}
	t.store(v, v)
	return v
}

func internAll(vs []string) []string {
	for i, v := range vs {
		vs[i] = intern(v)
	}
	return vs
}

var sharedWebhooks = internTable[*RoomWebhook]{m: map[string]*RoomWebhook{}}

// internWebhook returns a config equal to w that rooms can share. Rows are
// never changed in place, so rooms can point at one config. The key is
// built in a stack buffer: a lookup allocates nothing (every create and
// every restored room looks its config up).
func internWebhook(w *RoomWebhook) *RoomWebhook {
	if w == nil {
		return nil
	}
	var buf [256]byte
	k := append(buf[:0], w.EndPoint...)
	for _, e := range w.Events {
		k = append(append(k, 0), e...)
	}
	t := &sharedWebhooks
	t.mu.Lock()
	defer t.mu.Unlock()
	if shared, ok := t.m[string(k)]; ok { // the conversion does not allocate for a lookup
		if shared == w || shared.EndPoint == w.EndPoint && slices.Equal(shared.Events, w.Events) {
			return shared
		}
	}
	w.EndPoint, w.Events = intern(w.EndPoint), internAll(w.Events)
	t.store(string(k), w)
	return w
}
