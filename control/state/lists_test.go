package state

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
)

// Every list filter the API offers is served from an index (and a counter)
// of its own; these tests hold the pages and totals to a plain walk of
// every row, over random histories and after a snapshot's restore.

// pageOf cuts a window from a list already in newest-first order.
func pageOf[T any](all []T, p Page) []T {
	if p.Offset >= len(all) {
		return nil
	}
	all = all[p.Offset:]
	if p.Limit >= 0 && p.Limit < len(all) {
		all = all[:p.Limit]
	}
	return all
}

var listWindows = []Page{{Offset: 0, Limit: 3}, {Offset: 2, Limit: 2}, {Offset: 5, Limit: 4}, {Offset: 0, Limit: -1}, {Offset: 40, Limit: 10}, {Offset: 0, Limit: 0}}

func TestJobListsMatchAWalkOfEveryJob(t *testing.T) {
	f := newTestFSM(t)
	rooms := []struct{ user, roomID string }{{"u1", "aaaa-aaaa-aaaa"}, {"u1", "bbbb-bbbb-bbbb"}, {"u2", "cccc-cccc-cccc"}}
	for i, r := range rooms {
		// Two rooms send webhooks (the job views list their deliveries).
		var hook *RoomWebhook
		if i != 1 {
			hook = &RoomWebhook{EndPoint: "https://hooks.example/" + r.roomID}
		}
		if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: fmt.Sprintf("r%023d", i), RoomID: r.roomID, UserID: r.user, APIKey: "k", CreatedAt: t0, UpdatedAt: t0, Webhook: hook}}); err != nil {
			t.Fatal(err)
		}
	}
	kinds := []egressapi.Kind{egressapi.KindComposite, egressapi.KindParticipant, egressapi.KindMerge}
	sessions := []string{"", "111111111111111111111111", "222222222222222222222222"}
	participants := []string{"", "p1", "p/2"}
	rng := rand.New(rand.NewPCG(1, 2))
	var created []string
	seq := map[string]uint64{}
	at := t0
	for step := 0; step < 600; step++ {
		at = at.Add(time.Second)
		switch op := rng.IntN(10); {
		case op < 4 || len(created) == 0:
			r := rooms[rng.IntN(len(rooms))]
			id := fmt.Sprintf("job-%04d", step)
			if len(created) > 0 && rng.IntN(4) == 0 {
				// An id that extends another's with "-…": their webhooks'
				// ids share a prefix.
				id = created[rng.IntN(len(created))] + "-" + id
			}
			j := Job{ID: id, Kind: kinds[rng.IntN(len(kinds))], UserID: r.user, APIKey: "k", RoomID: r.roomID,
				SessionID: sessions[rng.IntN(len(sessions))], ParticipantID: participants[rng.IntN(len(participants))], CreatedAt: at, UpdatedAt: at}
			if _, err := f.apply(CmdCreateJob, CreateJob{Job: j}); err == nil {
				created = append(created, j.ID)
			} else if !errors.Is(err, ErrConflict) {
				t.Fatal(err)
			}
		case op < 7:
			id := created[rng.IntN(len(created))]
			seq[id]++
			st := []egressapi.State{egressapi.StateRunning, egressapi.StateStopping, egressapi.StateStopped, egressapi.StateFailed}[rng.IntN(4)]
			// A report may also name the session the job records.
			if _, err := f.apply(CmdJobStatus, JobStatus{Status: egressapi.Status{ID: id, State: st, Seq: seq[id], SessionID: sessions[1+rng.IntN(2)]}, At: at}); err != nil && !errors.Is(err, ErrNotFound) { // aborted
				t.Fatal(err)
			}
		case op < 8:
			if _, err := f.apply(CmdFailJobs, FailJobs{IDs: []string{created[rng.IntN(len(created))]}, Reason: "lost", At: at}); err != nil {
				t.Fatal(err)
			}
		case op < 9:
			id := created[rng.IntN(len(created))]
			if _, err := f.apply(CmdAbortJob, AbortJob{ID: id}); err != nil && !errors.Is(err, ErrConflict) {
				t.Fatal(err)
			}
		default:
			id := created[rng.IntN(len(created))]
			var user string
			f.Read(func(s *Store) {
				if j := s.job(id); j != nil {
					user = j.UserID
				}
			})
			if _, err := f.apply(CmdDeleteJob, DeleteJob{UserID: user, ID: id, At: at}); err != nil && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
	}
	check := func(name string, g *FSM) {
		g.Read(func(s *Store) {
			every := allRows[*Job](s, tJobs)
			slices.SortFunc(every, func(a, b *Job) int { return int(b.CreateIndex) - int(a.CreateIndex) })
			listed, deleted := 0, 0
			for _, j := range every {
				if j.DeletedAt != nil {
					deleted++
				} else {
					listed++
				}
			}
			if deleted == 0 || listed < 50 {
				t.Fatalf("the history left %d listed and %d deleted jobs: too few to test lists", listed, deleted)
			}
			// Each job's webhooks (its view) against a walk of every delivery.
			log := allRows[*Delivery](s, tOutbox)
			slices.SortFunc(log, func(a, b *Delivery) int { return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Sub, b.Sub)) })
			var withHooks, delivered, sharing int
			for _, j := range every {
				want := []JobWebhook{}
				for _, d := range log {
					if d.EventID == j.ID+"-"+d.EventType {
						want = append(want, JobWebhook{Type: d.EventType, Success: d.Status == DeliveryDelivered})
						if d.Status == DeliveryDelivered {
							delivered++
						}
					} else if strings.HasPrefix(d.EventID, j.ID+"-") {
						sharing++
					}
				}
				if got := s.JobWebhooks(j); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: job %s's webhooks %+v, want %+v", name, j.ID, got, want)
				}
				if len(want) > 0 {
					withHooks++
				}
			}
			if withHooks < 20 || delivered == 0 || sharing == 0 {
				t.Fatalf("%s: %d jobs with webhooks, %d delivered, %d sharing another's prefix: too few to test", name, withHooks, delivered, sharing)
			}
			for _, user := range []string{"u1", "u2"} {
				for _, kind := range kinds {
					for _, room := range []string{"", "aaaa-aaaa-aaaa", "cccc-cccc-cccc"} {
						for _, session := range sessions {
							for _, participant := range participants {
								for _, state := range []egressapi.State{"", egressapi.StateStarting, egressapi.StateStopped} {
									for _, id := range []string{"", every[len(every)/2].ID} {
										flt := JobFilter{UserID: user, Kind: kind, RoomID: room, SessionID: session, ParticipantID: participant, State: state, ID: id}
										var want []*Job
										for _, j := range every {
											if flt.matches(j) {
												want = append(want, j)
											}
										}
										for _, w := range listWindows {
											got, total := s.JobsPage(flt, w)
											if g, w := ids(got, jobID), ids(pageOf(want, w), jobID); total != len(want) || !slices.Equal(g, w) {
												t.Fatalf("%s: %+v: total %d, want %d; page %v, want %v", name, flt, total, len(want), g, w)
											}
										}
									}
								}
							}
						}
					}
				}
			}
		})
	}
	var pending []*Delivery
	f.Read(func(s *Store) { pending = s.PendingDeliveries(0) })
	for i, d := range pending {
		if i%2 == 0 {
			if _, err := f.apply(CmdRecordDelivery, RecordDelivery{ID: d.ID, Status: DeliveryDelivered, Attempts: 1, DoneAt: &at, AttemptedAt: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.Read(func(s *Store) { checkCounters(t, s) })
	check("applied", f.FSM)
	check("restored", restoreBytes(t, persist(t, f.FSM)))
}

func jobID(j *Job) string { return j.ID }

// TestSessionDateRangesAreCounted: sessions spread over three months
// (month, day and hour boundaries, ties in start time, ongoing and ended)
// listed by date ranges, alone and with a status, against a walk of every
// session; ranges start and end on session starts, between them, outside
// the history and reversed.
func TestSessionDateRangesAreCounted(t *testing.T) {
	w := &world{f: newTestFSM(t)}
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 1, 30, 22, 0, 0, 0, time.UTC)
	var starts []time.Time
	for i := 0; i < 6; i++ {
		w.room(t, "u1", fmt.Sprintf("u1aa-room-%04d", i), false)
	}
	w.room(t, "u2", "u2aa-room-0000", false)
	busy := time.Date(2026, 2, 27, 6, 0, 0, 0, time.UTC) // two busy days: several sessions an hour
	for i := 0; i < 360; i++ {
		start := base.Add(time.Duration(rng.Int64N(int64(90 * 24 * time.Hour))))
		if i%3 == 0 {
			start = busy.Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
		}
		if i%7 == 3 && len(starts) > 0 {
			start = starts[rng.IntN(len(starts))] // a tie
		}
		if i%13 == 4 {
			start = start.Truncate(time.Hour) // on an hour's edge
		}
		starts = append(starts, start)
		end := start.Add(time.Minute)
		if i%5 == 0 {
			end = time.Time{} // stays ongoing until the room's next session ends it
		}
		room := fmt.Sprintf("u1aa-room-%04d", i%6)
		if i%11 == 0 {
			room = "u2aa-room-0000"
		}
		w.session(t, room, start, end)
	}
	instants := []*time.Time{nil}
	for _, t := range []time.Time{starts[0], starts[17], starts[100], base.Add(-time.Hour), base.Add(200 * 24 * time.Hour),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 14, 13, 0, 0, 0, time.UTC), starts[5].Add(time.Nanosecond), starts[9].Add(-time.Nanosecond)} {
		instants = append(instants, &t)
	}
	// Around sessions on an hour's edge: the hour before counted from
	// its end (an instant in its second half), the edge itself, and 1 ns
	// either side.
	for _, i := range []int{4, 30, 56} {
		edge := starts[i]
		for _, d := range []time.Duration{-10 * time.Minute, -time.Nanosecond, 0, time.Nanosecond, 20 * time.Minute} {
			t := edge.Add(d)
			instants = append(instants, &t)
		}
	}
	for i := 0; i < 12; i++ {
		t := base.Add(time.Duration(rng.Int64N(int64(95 * 24 * time.Hour))))
		u := busy.Add(time.Duration(rng.Int64N(int64(48 * time.Hour))))
		instants = append(instants, &t, &u)
	}
	check := func(name string, s *Store) {
		for _, user := range []string{"u1", "u2"} {
			for _, status := range []string{"", "ongoing", "ended"} {
				for _, after := range instants {
					for _, before := range instants {
						f := SessionFilter{UserID: user, Status: status, StartAfter: after, StartBefore: before}
						want := wantSessions(s, f)
						for _, p := range listWindows {
							got, total := s.SessionsPage(f, p)
							if g, w := ids(got, sessionID), ids(pageOf(want, p), sessionID); total != len(want) || !slices.Equal(g, w) {
								t.Fatalf("%s: %s %q after %v before %v, %+v: total %d, want %d; page %v, want %v", name, user, status, after, before, p, total, len(want), g, w)
							}
						}
					}
				}
			}
		}
	}
	w.f.Read(func(s *Store) {
		checkCounters(t, s)
		check("applied", s)
	})
	restoreBytes(t, persist(t, w.f.FSM)).Read(func(s *Store) { check("restored", s) })
}

// TestOngoingCountsMatchTheSessions: the metrics' counts equal the live
// sessions and their active participants.
func TestOngoingCountsMatchTheSessions(t *testing.T) {
	w := buildWorld(t)
	// a second participant in one live session; in another, one who came and left
	if _, err := w.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "j-extra", RoomID: "u1aa-room-0000", ParticipantID: "q", Name: "Q", EdgeID: "e1",
		At: t0.Add(3 * time.Hour), IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "j-gone", RoomID: "u1aa-room-0002", ParticipantID: "r", Name: "R", EdgeID: "e1",
		At: t0.Add(3 * time.Hour), IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "l-gone", RoomID: "u1aa-room-0002", ParticipantID: "r", EdgeID: "e1",
		At: t0.Add(3*time.Hour + time.Minute), IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	w.f.Read(func(s *Store) {
		live := s.OngoingSessions()
		active := 0
		for _, ss := range live {
			active += ss.ActiveCount()
		}
		sessions, participants := s.OngoingCounts()
		if sessions != len(live) || participants != active || sessions == 0 || participants == sessions {
			t.Fatalf("counts %d sessions, %d participants; the sessions say %d and %d", sessions, participants, len(live), active)
		}
	})
}
