package chaos

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Operation kinds of the rooms history.
const (
	opCreate     = "create"     // POST /v2/rooms {customRoomId}
	opGet        = "get"        // GET /v2/rooms/{customRoomId}?consistent=true
	opList       = "list"       // GET /v2/rooms?query={customRoomId}&consistent=true
	opDeactivate = "deactivate" // POST /v2/rooms/deactivate {roomId}
	opEnable     = "enable"     // POST /v2/rooms/{roomId} {status: enabled}
	opIKCreate   = "ikcreate"   // POST /v2/rooms with an Idempotency-Key, no customRoomId
	opGetID      = "getid"      // GET /v2/rooms/{roomId}?consistent=true
)

// roomInput is what a client asked about one object (a customRoomId, or
// an Idempotency-Key's room).
type roomInput struct {
	Kind   string
	RoomID string // deactivate, enable, getid: the roomId sent
}

// roomOutput is what it was told. Unknown: no definite answer (503,
// timeout, connection error): the write may or may not have happened.
type roomOutput struct {
	Unknown  bool
	Absent   bool // 404, or an empty list
	RoomID   string
	Disabled bool
	Count    int // list: rooms in the answer
}

// roomState is one object's state: absent, or a room that is active or
// deactivated. RoomID "" with Exists: a write of unknown outcome created
// it and no answer has shown its roomId yet; the first one that does
// fixes it.
type roomState struct {
	Exists   bool
	RoomID   string
	Disabled bool
}

func sameRoom(s roomState, id string) bool { return s.RoomID == "" || s.RoomID == id }

// roomStep is the sequential specification (VideoSDK semantics): creating
// an existing customRoomId returns the existing room as it is; deactivate
// and enable answer the room as it becomes; reads answer the state.
func roomStep(state, input, output any) (bool, any) {
	s, in, out := state.(roomState), input.(roomInput), output.(roomOutput)
	switch in.Kind {
	case opCreate, opIKCreate:
		if out.Unknown {
			if !s.Exists {
				return true, roomState{Exists: true}
			}
			return true, s
		}
		if out.Absent || out.RoomID == "" {
			return false, s
		}
		if !s.Exists {
			return !out.Disabled, roomState{Exists: true, RoomID: out.RoomID}
		}
		if !sameRoom(s, out.RoomID) || out.Disabled != s.Disabled {
			return false, s
		}
		s.RoomID = out.RoomID
		return true, s
	case opGet, opList, opGetID:
		if out.Unknown {
			return true, s
		}
		if out.Count > 1 {
			return false, s // two rooms for one customRoomId
		}
		if out.Absent {
			return !s.Exists, s
		}
		if !s.Exists || !sameRoom(s, out.RoomID) || out.Disabled != s.Disabled {
			return false, s
		}
		s.RoomID = out.RoomID
		return true, s
	case opDeactivate, opEnable:
		want := in.Kind == opDeactivate
		if sabotage("model") {
			want = false // the model forgets deactivations
		}
		if out.Unknown {
			if s.Exists && sameRoom(s, in.RoomID) {
				return true, roomState{Exists: true, RoomID: in.RoomID, Disabled: want}
			}
			return true, s
		}
		if out.Absent {
			return !s.Exists, s
		}
		if !s.Exists || !sameRoom(s, in.RoomID) || out.RoomID != in.RoomID || out.Disabled != (in.Kind == opDeactivate) {
			return false, s
		}
		return true, roomState{Exists: true, RoomID: in.RoomID, Disabled: want}
	}
	panic("unknown operation " + in.Kind)
}

var roomModel = porcupine.Model{
	Init:  func() any { return roomState{} },
	Step:  roomStep,
	Equal: func(a, b any) bool { return a.(roomState) == b.(roomState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(roomInput), output.(roomOutput)
		arg := ""
		if in.RoomID != "" {
			arg = in.RoomID
		}
		return fmt.Sprintf("%s(%s) → %s", in.Kind, arg, describeOutput(out))
	},
	DescribeState: func(state any) string {
		s := state.(roomState)
		switch {
		case !s.Exists:
			return "absent"
		case s.Disabled:
			return "deactivated(" + orAny(s.RoomID) + ")"
		default:
			return "active(" + orAny(s.RoomID) + ")"
		}
	},
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return fmt.Sprint(info)
	},
}

func orAny(id string) string {
	if id == "" {
		return "?"
	}
	return id
}

func describeOutput(out roomOutput) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Count > 1:
		return fmt.Sprintf("%d rooms", out.Count)
	case out.Absent:
		return "absent"
	case out.Disabled:
		return "deactivated(" + out.RoomID + ")"
	default:
		return "active(" + out.RoomID + ")"
	}
}

// rec is one recorded operation.
type rec struct {
	Key    string // the object: customRoomId, or "ik:"+Idempotency-Key
	Client int
	Node   string
	In     roomInput
	Out    roomOutput
	Call   int64 // ns since the history started
	Return int64
	Status int
	Class  string
	Err    string
}

func (r rec) String() string {
	ret := fmt.Sprintf("%.3fs", float64(r.Return)/1e9)
	return fmt.Sprintf("[%8.3fs → %8s] client %-3d %-3s %-10s %-16s → %-30s (%d %s %s)", float64(r.Call)/1e9, ret, r.Client, r.Node,
		r.In.Kind, r.In.RoomID, describeOutput(r.Out), r.Status, r.Class, r.Err)
}

// history records operations with monotonic timestamps.
type history struct {
	t0  time.Time
	mu  sync.Mutex
	ops []rec
}

func newHistory() *history { return &history{t0: time.Now()} }

func (h *history) now() int64 { return int64(time.Since(h.t0)) }

func (h *history) add(r rec) {
	h.mu.Lock()
	h.ops = append(h.ops, r)
	h.mu.Unlock()
}

func (h *history) snapshot() []rec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rec(nil), h.ops...)
}

// byKey groups a history into porcupine partitions: reads without a
// definite answer say nothing and are left out; writes without one may
// take effect at any time after they were sent (Return = +inf).
func byKey(ops []rec) (map[string][]porcupine.Operation, map[string][]rec) {
	parts := map[string][]porcupine.Operation{}
	recs := map[string][]rec{}
	for _, r := range ops {
		isRead := r.In.Kind == opGet || r.In.Kind == opList || r.In.Kind == opGetID
		if r.Out.Unknown && isRead {
			continue
		}
		ret := r.Return
		if r.Out.Unknown {
			ret = math.MaxInt64
		}
		parts[r.Key] = append(parts[r.Key], porcupine.Operation{ClientId: r.Client, Input: r.In, Call: r.Call, Output: r.Out, Return: ret,
			Metadata: fmt.Sprintf("node %s, HTTP %d %s %s", r.Node, r.Status, r.Class, r.Err)})
		recs[r.Key] = append(recs[r.Key], r)
	}
	return parts, recs
}

// linReport is the outcome of checking every partition.
type linReport struct {
	Keys, Ops, Unknown int
	Illegal            []string // keys whose history is not linearizable
	TimedOut           []string // keys the checker could not decide in time
	Infos              map[string]porcupine.LinearizationInfo
	Recs               map[string][]rec
}

// checkLinearizable checks each object's history on its own (a history is
// linearizable iff each object's is).
func checkLinearizable(ops []rec, perKey time.Duration) linReport {
	parts, recs := byKey(ops)
	rep := checkPartitions(parts, roomModel, func(out any) bool { return out.(roomOutput).Unknown }, perKey)
	rep.Recs = recs
	return rep
}

// checkPartitions checks each partition's history against model on its
// own, counting the operations whose outcome the client never learnt.
func checkPartitions(parts map[string][]porcupine.Operation, model porcupine.Model, unknown func(out any) bool, perKey time.Duration) linReport {
	rep := linReport{Keys: len(parts), Infos: map[string]porcupine.LinearizationInfo{}}
	for _, k := range slices.Sorted(maps.Keys(parts)) {
		p := parts[k]
		rep.Ops += len(p)
		for _, o := range p {
			if unknown(o.Output) {
				rep.Unknown++
			}
		}
		res, info := porcupine.CheckOperationsVerbose(model, p, perKey)
		switch res {
		case porcupine.Illegal:
			rep.Illegal = append(rep.Illegal, k)
			rep.Infos[k] = info
		case porcupine.Unknown:
			rep.TimedOut = append(rep.TimedOut, k)
		}
	}
	return rep
}

// operation is one recorded call of a history (rooms' or sessions').
type operation interface {
	fmt.Stringer
	calledAt() int64
}

func (r rec) calledAt() int64     { return r.Call }
func (r sessRec) calledAt() int64 { return r.Call }

// describeHistory renders one object's history in call order, at most max
// operations, for a failure message.
func describeHistory[R operation](recs []R, max int) string {
	rs := slices.Clone(recs)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].calledAt() < rs[j].calledAt() })
	var b strings.Builder
	for i, r := range rs {
		if i == max {
			fmt.Fprintf(&b, "  ... %d more\n", len(rs)-max)
			break
		}
		b.WriteString("  " + r.String() + "\n")
	}
	return b.String()
}

// finalRoom is a room as a node lists it at the end.
type finalRoom struct {
	RoomID       string
	CustomRoomID string
	Tag          string // autoStartConfig.chaos: the Idempotency-Key that created it
	Disabled     bool
}

// finalReport is the outcome of the end-of-run checks.
type finalReport struct {
	Checked  int      // acknowledged creates checked on every node
	Lost     []string // acknowledged rooms missing (or with another roomId) on a node
	Dups     []string // a customRoomId or Idempotency-Key with two rooms
	Diverged []string // nodes that list different rooms
}

// checkFinal compares the acknowledged creates (object → roomId) with
// every node's final listing.
func checkFinal(acked, ackedIK map[string]string, listings map[string][]finalRoom) finalReport {
	var rep finalReport
	nodes := make([]string, 0, len(listings))
	for n := range listings {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var ref string
	for _, n := range nodes {
		byCID := map[string][]string{}
		byTag := map[string][]string{}
		set := map[string]bool{}
		for _, r := range listings[n] {
			if r.CustomRoomID != "" {
				byCID[r.CustomRoomID] = append(byCID[r.CustomRoomID], r.RoomID)
			}
			if r.Tag != "" {
				byTag[r.Tag] = append(byTag[r.Tag], r.RoomID)
			}
			set[fmt.Sprintf("%s/%s/%v", r.RoomID, r.CustomRoomID, r.Disabled)] = true
		}
		for cid, ids := range byCID {
			if len(ids) > 1 {
				rep.Dups = append(rep.Dups, fmt.Sprintf("node %s: customRoomId %q has rooms %v", n, cid, ids))
			}
		}
		for tag, ids := range byTag {
			if len(ids) > 1 {
				rep.Dups = append(rep.Dups, fmt.Sprintf("node %s: Idempotency-Key %q created rooms %v", n, tag, ids))
			}
		}
		for cid, id := range acked {
			rep.Checked++
			if got := byCID[cid]; len(got) == 0 || got[0] != id {
				rep.Lost = append(rep.Lost, fmt.Sprintf("node %s: acknowledged customRoomId %q → %s, listed as %v", n, cid, id, got))
			}
		}
		for k, id := range ackedIK {
			rep.Checked++
			if got := byTag[k]; len(got) == 0 || got[0] != id {
				rep.Lost = append(rep.Lost, fmt.Sprintf("node %s: acknowledged Idempotency-Key %q → %s, listed as %v", n, k, id, got))
			}
		}
		keys := make([]string, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sig := strings.Join(keys, ",")
		if ref == "" {
			ref = sig
		} else if sig != ref {
			rep.Diverged = append(rep.Diverged, fmt.Sprintf("node %s lists %d rooms, node %s %d, and they differ", n, len(keys), nodes[0], len(listings[nodes[0]])))
		}
	}
	sort.Strings(rep.Lost)
	sort.Strings(rep.Dups)
	return rep
}
