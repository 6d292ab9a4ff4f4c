package chaos

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/test/procs"
)

// The sessions history: per room, a session starts when an edge reports a
// participant joining a room without an ongoing session (POST
// /internal/v1/edges/events, as edges do), ends with POST /v2/sessions/end,
// and is read with GET /v2/sessions?roomId=&status=ongoing&consistent=true.
// The rooms are made for this history alone (no room operation touches
// them: deactivating a room would end its session too).
const (
	opJoin = "join" // an edge's participant-joined report
	opEnd  = "end"  // POST /v2/sessions/end {roomId}
	opRead = "read" // GET /v2/sessions?roomId=...&status=ongoing&consistent=true
)

type sessInput struct {
	Kind string
	PID  string // join
}

// sessOutput is what a client was told. Unknown: no definite answer.
type sessOutput struct {
	Unknown   bool
	NoSession bool   // end: 400 "no ongoing session"; read: no ongoing session listed
	SessionID string // end: the session ended; read: the ongoing one
	Count     int    // read: ongoing sessions listed
}

// sessState is one room: an ongoing session (ID "" until an answer names
// it) or none, and the sessions acknowledged or possibly ended so far (a
// read that shows one of them ongoing again is stale).
type sessState struct {
	Ongoing bool
	ID      string
	Ended   string // ",id1,id2,"
}

func (s sessState) ended(id string) bool { return strings.Contains(s.Ended, ","+id+",") }

func (s sessState) end() sessState {
	e := s.Ended
	if e == "" {
		e = ","
	}
	if s.ID != "" {
		e += s.ID + ","
	}
	return sessState{Ended: e}
}

// sessStep is the sequential specification: a join starts a session when
// none is ongoing (else joins it); end ends the ongoing session and
// answers it, or answers 400 when there is none; a read lists the ongoing
// session, at most one.
func sessStep(state, input, output any) (bool, any) {
	s, in, out := state.(sessState), input.(sessInput), output.(sessOutput)
	switch in.Kind {
	case opJoin:
		if !s.Ongoing {
			return true, sessState{Ongoing: true, Ended: s.Ended}
		}
		return true, s
	case opEnd:
		if out.Unknown {
			if s.Ongoing {
				return true, s.end()
			}
			return true, s
		}
		if out.NoSession {
			return !s.Ongoing, s
		}
		if !s.Ongoing || (s.ID != "" && s.ID != out.SessionID) || s.ended(out.SessionID) {
			return false, s
		}
		s.ID = out.SessionID
		if sabotage("sessions") {
			return true, s // the model forgets that sessions end
		}
		return true, s.end()
	case opRead:
		if out.Count > 1 {
			return false, s // two ongoing sessions in one room
		}
		if out.NoSession {
			return !s.Ongoing, s
		}
		if !s.Ongoing || (s.ID != "" && s.ID != out.SessionID) || s.ended(out.SessionID) {
			return false, s
		}
		s.ID = out.SessionID
		return true, s
	}
	panic("unknown operation " + in.Kind)
}

var sessModel = porcupine.Model{
	Init:  func() any { return sessState{} },
	Step:  sessStep,
	Equal: func(a, b any) bool { return a.(sessState) == b.(sessState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(sessInput), output.(sessOutput)
		return fmt.Sprintf("%s(%s) → %s", in.Kind, in.PID, describeSessOutput(out))
	},
	DescribeState: func(state any) string {
		s := state.(sessState)
		if !s.Ongoing {
			return "no session (ended " + strings.Trim(s.Ended, ",") + ")"
		}
		return "ongoing(" + orAny(s.ID) + ")"
	},
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return fmt.Sprint(info)
	},
}

func describeSessOutput(out sessOutput) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Count > 1:
		return fmt.Sprintf("%d ongoing sessions", out.Count)
	case out.NoSession:
		return "no session"
	case out.SessionID != "":
		return "session " + out.SessionID
	default:
		return "ok"
	}
}

// sessRec is one recorded sessions operation.
type sessRec struct {
	Room   string
	Client int
	Node   string
	In     sessInput
	Out    sessOutput
	Call   int64
	Return int64
	Status int
	Class  string
	Err    string
}

func (r sessRec) String() string {
	return fmt.Sprintf("[%8.3fs → %8.3fs] client %-3d %-3s %-5s %-6s → %-40s (%d %s %s)", float64(r.Call)/1e9, float64(r.Return)/1e9, r.Client, r.Node,
		r.In.Kind, r.In.PID, describeSessOutput(r.Out), r.Status, r.Class, r.Err)
}

// checkSessions checks each room's history on its own: reads without a
// definite answer are left out, writes without one may take effect at any
// time after they were sent.
func checkSessions(ops []sessRec, perKey time.Duration) (rep linReport, recs map[string][]sessRec) {
	parts := map[string][]porcupine.Operation{}
	recs = map[string][]sessRec{}
	for _, r := range ops {
		if r.Out.Unknown && r.In.Kind == opRead {
			continue
		}
		ret := r.Return
		if r.Out.Unknown {
			ret = math.MaxInt64
		}
		parts[r.Room] = append(parts[r.Room], porcupine.Operation{ClientId: r.Client, Input: r.In, Call: r.Call, Output: r.Out, Return: ret,
			Metadata: fmt.Sprintf("node %s, HTTP %d %s %s", r.Node, r.Status, r.Class, r.Err)})
		recs[r.Room] = append(recs[r.Room], r)
	}
	rep = checkPartitions(parts, sessModel, func(out any) bool { return out.(sessOutput).Unknown }, perKey)
	return rep, recs
}

// sessRun drives the sessions history next to TestChaosRooms' clients,
// through the same faults.
type sessRun struct {
	cl   *procs.Cluster
	api  *api // crawler token: the sessions API
	edge *api // the edge token: event reports
	t0   time.Time
	mix  *mix

	mu       sync.Mutex
	rooms    []string // roomIds the clients use now (at most sessRooms)
	all      []string // every room used
	nextRoom int
	ops      []sessRec
	unexpect []string
	events   atomic.Int64
	started  atomic.Int64 // definite joins
	ended    atomic.Int64 // acknowledged ends
}

func (s *sessRun) now() int64 { return int64(time.Since(s.t0)) }

func (s *sessRun) unexpected(format string, args ...any) {
	s.mu.Lock()
	s.unexpect = append(s.unexpect, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

func (s *sessRun) add(r sessRec) {
	s.mu.Lock()
	s.ops = append(s.ops, r)
	s.mu.Unlock()
}

func (s *sessRun) snapshot() []sessRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sessRec(nil), s.ops...)
}

// sessRooms is how many rooms the clients share at a time. A room's
// history only grows while it is in use: rotate retires the oldest, so
// porcupine checks many short histories (a write of unknown outcome stays
// open to the end of its room's history, and a long run would pile them up).
const sessRooms = 4

// rotate adds a room (through any node that answers) and retires the
// oldest beyond sessRooms; during a fault it may add none this time.
func (s *sessRun) rotate() {
	s.mu.Lock()
	n := s.nextRoom
	s.nextRoom++
	s.mu.Unlock()
	c := s.cl.Nodes[n%len(s.cl.Nodes)]
	a := s.api.do(c.URL, "POST", "/v2/rooms", map[string]any{"customRoomId": fmt.Sprintf("sess-%04d", n)}, nil, 3*time.Second)
	var v roomView
	if a.Status != 200 || json.Unmarshal(a.Body, &v) != nil || v.RoomID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, v.RoomID)
	s.rooms = append(s.rooms, v.RoomID)
	if len(s.rooms) > sessRooms {
		s.rooms = s.rooms[1:]
	}
}

func (s *sessRun) pick(rng *rand.Rand) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[rng.IntN(len(s.rooms))]
}

// join reports one participant joining room (a fresh event id: not a
// retry, so an unanswered report may or may not have been applied).
func (s *sessRun) join(client int, c *procs.Control, room, pid string, timeout time.Duration) {
	id := fmt.Sprintf("sess-%d-%d", client, s.events.Add(1))
	batch := edgeapi.EventBatch{EdgeID: "chaos-sessions", Events: []edgeapi.Event{{ID: id, Kind: edgeapi.EventParticipantJoined, RoomID: room,
		ParticipantID: pid, Name: pid, At: time.Now().UTC()}}}
	call := s.now()
	a := s.edge.do(c.URL, "POST", "/internal/v1/edges/events", batch, nil, timeout)
	s.mix.add("sess-join", a, "on "+c.ID, fmt.Sprintf("at %.3fs", float64(call)/1e9))
	out := sessOutput{}
	switch {
	case a.Status == 200:
		s.started.Add(1)
	case a.definite():
		s.unexpected("join %s %s on %s: %d %s", room, pid, c.ID, a.Status, strings.TrimSpace(string(a.Body)))
		return
	default:
		out.Unknown = true
	}
	s.add(sessRec{Room: room, Client: client, Node: c.ID, In: sessInput{Kind: opJoin, PID: pid}, Out: out, Call: call, Return: s.now(), Status: a.Status, Class: a.Class, Err: a.Err})
}

func (s *sessRun) end(client int, c *procs.Control, room string, timeout time.Duration) {
	call := s.now()
	a := s.api.do(c.URL, "POST", "/v2/sessions/end", map[string]any{"roomId": room}, nil, timeout)
	s.mix.add("sess-end", a, "on "+c.ID, fmt.Sprintf("at %.3fs", float64(call)/1e9))
	out := sessOutput{}
	switch {
	case a.Status == 200:
		var v struct {
			ID     string `json:"id"`
			RoomID string `json:"roomId"`
		}
		if err := json.Unmarshal(a.Body, &v); err != nil || v.ID == "" || v.RoomID != room {
			s.unexpected("end %s on %s: answer %s", room, c.ID, a.Body)
			return
		}
		out.SessionID = v.ID
		s.ended.Add(1)
	case a.Status == 400 && strings.Contains(string(a.Body), "no ongoing session"):
		out.NoSession = true
	case a.definite():
		s.unexpected("end %s on %s: %d %s", room, c.ID, a.Status, strings.TrimSpace(string(a.Body)))
		return
	default:
		out.Unknown = true
	}
	s.add(sessRec{Room: room, Client: client, Node: c.ID, In: sessInput{Kind: opEnd}, Out: out, Call: call, Return: s.now(), Status: a.Status, Class: a.Class, Err: a.Err})
}

// read records a consistent read of room's ongoing sessions; it reports
// whether the answer was definite.
func (s *sessRun) read(client int, c *procs.Control, room string, timeout time.Duration) bool {
	call := s.now()
	a := s.api.do(c.URL, "GET", "/v2/sessions?status=ongoing&consistent=true&perPage=10&roomId="+url.QueryEscape(room), nil, nil, timeout)
	s.mix.add("sess-read", a, "on "+c.ID, fmt.Sprintf("at %.3fs", float64(call)/1e9))
	out := sessOutput{}
	switch {
	case a.Status == 200:
		var l struct {
			Data []struct {
				ID     string  `json:"id"`
				RoomID string  `json:"roomId"`
				End    *string `json:"end"`
			} `json:"data"`
		}
		if err := json.Unmarshal(a.Body, &l); err != nil {
			s.unexpected("read %s on %s: undecodable %s", room, c.ID, a.Body)
			return false
		}
		out.Count = len(l.Data)
		if len(l.Data) == 0 {
			out.NoSession = true
		} else {
			out.SessionID = l.Data[0].ID
		}
		for _, d := range l.Data {
			if d.RoomID != room || d.End != nil {
				s.unexpected("read %s on %s: listed %s of room %s (end %v) as ongoing", room, c.ID, d.ID, d.RoomID, d.End)
			}
		}
	case a.definite():
		s.unexpected("read %s on %s: %d %s", room, c.ID, a.Status, strings.TrimSpace(string(a.Body)))
		return false
	default:
		return false // an unanswered read says nothing
	}
	s.add(sessRec{Room: room, Client: client, Node: c.ID, In: sessInput{Kind: opRead}, Out: out, Call: call, Return: s.now(), Status: a.Status, Class: a.Class, Err: a.Err})
	return true
}

// worker sends joins, ends and reads about random rooms to random nodes.
func (s *sessRun) worker(client int, timeout func() time.Duration, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(client), uint64(time.Now().UnixNano())))
	for {
		select {
		case <-stop:
			return
		default:
		}
		c := s.cl.Nodes[rng.IntN(len(s.cl.Nodes))]
		room := s.pick(rng)
		switch x := rng.Float64(); {
		case x < 0.35:
			s.join(client, c, room, fmt.Sprintf("p%d", rng.IntN(4)), timeout())
		case x < 0.55:
			s.end(client, c, room, timeout())
		default:
			s.read(client, c, room, timeout())
		}
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
	}
}

// final reads every room through every node until the answer is definite.
func (s *sessRun) final() {
	s.mu.Lock()
	rooms := append([]string(nil), s.all...)
	s.mu.Unlock()
	for _, c := range s.cl.Nodes {
		for _, room := range rooms {
			for try := 0; try < 6 && !s.read(100, c, room, 10*time.Second); try++ {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}
