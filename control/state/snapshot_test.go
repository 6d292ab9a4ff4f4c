package state

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden snapshot files in testdata/")

// fillAllTables applies commands that put at least one row in every table
// the store keeps, with fixed ids and times so the snapshot is byte-stable.
func fillAllTables(t *testing.T, f *testFSM) {
	t.Helper()
	must := func(ct CommandType, body any) any {
		t.Helper()
		v, err := f.apply(ct, body)
		if err != nil {
			t.Fatalf("command %d: %v", ct, err)
		}
		return v
	}
	must(CmdSetClusterSecrets, SetClusterSecrets{Secrets: ClusterSecrets{TicketPublicKey: []byte{1, 2}, TicketPrivateEnc: []byte{3}, WebhookRSAPubPEM: "PEM", WebhookRSAEnc: []byte{4}, TURNSecretEnc: []byte{5}, EdgeTokenHash: "eth"}})
	must(CmdRegisterNode, RegisterNode{Node: Node{ID: "node0", HTTPAddr: "http://127.0.0.1:1"}})
	must(CmdUpsertAPIKey, UpsertAPIKey{APIKey: APIKey{Key: "k1", Name: "one", UserID: "u1", SecretEnc: []byte{1}, SecretHash: "h1", WebhookSecretEnc: []byte{9}, CreatedAt: t0}})
	must(CmdUpsertAPIKey, UpsertAPIKey{APIKey: APIKey{Key: "k2", UserID: "u2", SecretEnc: []byte{2}, SecretHash: "h2", Pin: PinPolicy{Regions: []string{"eu"}}, CreatedAt: t0}})
	must(CmdRevokeAPIKey, RevokeAPIKey{Key: "k2", At: t0.Add(time.Minute)})
	must(CmdPutRefreshToken, PutRefreshToken{Hash: "rt1", Token: RefreshToken{APIKey: "k1", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}})
	must(CmdSetGlobalEndpoints, SetGlobalEndpoints{Endpoints: []GlobalEndpoint{{URL: "https://global.example/h", Events: []string{"session-*"}}}})
	must(CmdUpsertEdge, UpsertEdge{Edge: Edge{ID: "edge1", Region: "eu-west", SignalURL: "ws://e1", InternalURL: "http://e1", TURNURLs: []string{"turn:e1"}, Capacity: 10, RegisteredAt: t0, PublicKey: []byte{7}}})
	must(CmdUpsertEdge, UpsertEdge{Edge: Edge{ID: "edge2", Region: "eu-west", RegisteredAt: t0}})
	must(CmdCreateRoom, CreateRoom{Room: Room{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", RoomID: "abcd-efgh-ijkl", CustomRoomID: "custom-1", UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0,
		Webhook: &RoomWebhook{EndPoint: "https://hooks.example/x", Events: []string{"participant-*", "session*"}}, AutoCloseConfig: &AutoCloseConfig{Type: "session-ends", Duration: 60},
		AutoStartConfig: []byte(`{"a":1}`), AllowedParticipantIDs: []string{"p1", "p2"}, MaxParticipants: 5, Pin: PinPolicy{Jurisdictions: []string{"eu"}}}})
	must(CmdCreateRoom, CreateRoom{Room: Room{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", RoomID: "bbbb-bbbb-bbbb", UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0}})
	must(CmdSetRoomStatus, SetRoomStatus{UserID: "u1", RoomID: "bbbb-bbbb-bbbb", Disabled: true, At: t0.Add(time.Second)})
	must(CmdPlaceRoom, PlaceRoom{RoomID: "abcd-efgh-ijkl", EdgeID: "edge1", ReserveFor: 30, At: t0})
	must(CmdParticipantJoin, ParticipantJoin{EventID: "ev1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", Name: "One", EdgeID: "edge1", Region: "eu-west", At: t0,
		NewSessionID: "111111111111111111111111", NewDocID: "d00000000000000000000001", IDs: []string{"i1", "i2"}})
	must(CmdParticipantJoin, ParticipantJoin{EventID: "ev2", RoomID: "abcd-efgh-ijkl", ParticipantID: "p2", Name: "Two", EdgeID: "edge1", Region: "eu-west", At: t0.Add(time.Second),
		NewSessionID: "222222222222222222222222", NewDocID: "d00000000000000000000002", IDs: []string{"i3", "i4"}})
	must(CmdAppendStats, AppendStats{Samples: []RoomSample{{RoomID: "abcd-efgh-ijkl", Sample: StatsSample{ParticipantID: "p1", Time: t0.Add(10 * time.Second), Quality: 4.5,
		SendAudio: MediaSample{Bitrate: 32000, Packets: 500, RTTMs: 20}}}},
		Legs: []RoomLegSample{{RoomID: "abcd-efgh-ijkl", Leg: LegSample{EdgeID: "edge1", PeerEdgeID: "edge2", Direction: "out", Time: t0.Add(10 * time.Second), Bitrate: 1e6, Packets: 10, Bytes: 1000, Tracks: 2}}}})
	must(CmdRecordAudit, RecordAudit{RoomID: "abcd-efgh-ijkl", Hops: []AuditHop{{Kind: HopTURN, EdgeID: "edge1", Region: "eu-west", First: t0.Add(2 * time.Second)}}})
	must(CmdParticipantLeave, ParticipantLeave{EventID: "ev3", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", EdgeID: "edge1", At: t0.Add(20 * time.Second), IDs: []string{"i5", "i6"}})
	var pending []*Delivery
	f.Read(func(s *Store) { pending = s.PendingDeliveries(0) })
	if len(pending) < 3 {
		t.Fatalf("only %d deliveries enqueued", len(pending))
	}
	done := t0.Add(30 * time.Second)
	must(CmdRecordDelivery, RecordDelivery{ID: pending[0].ID, AttemptedAt: done, Status: DeliveryDelivered, Attempts: 1, LastStatus: 200, LatencyMs: 12, DoneAt: &done, SentFrom: "node0", SentFromRegion: "eu-west"})
	must(CmdRecordDelivery, RecordDelivery{ID: pending[1].ID, AttemptedAt: done, Status: DeliveryFailed, Attempts: 1, LastStatus: 410, EndpointGone: true, DoneAt: &done})
	must(CmdRequest, Request{ID: "req-1", At: t0, Type: CmdSetGlobalEndpoints, Body: []byte(`{"endpoints":[{"url":"https://global.example/h","events":["session-*"]}]}`)})
	must(CmdRequest, Request{ID: "idem-1", Key: true, BodyHash: "bh", At: t0, Type: CmdEnqueueEvents,
		Body: []byte(`{"events":[{"roomId":"abcd-efgh-ijkl","eventId":"eg1","eventType":"recording-started","data":{"id":"r1"},"extraUrl":"https://extra.example/x","at":"2026-11-23T10:01:00Z"}]}`)})
}

func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return sink.Bytes()
}

func restoreBytes(t *testing.T, b []byte) *FSM {
	t.Helper()
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSnapshotGolden pins the persisted encoding: a change to any persisted
// record shows up as a diff against testdata/snapshot-v1.json. Regenerate
// with -update only for a deliberate format change (and bump the version).
func TestSnapshotGolden(t *testing.T) {
	f := newTestFSM(t)
	fillAllTables(t, f)
	got := persist(t, f.FSM)
	path := filepath.Join("testdata", "snapshot-v1.json")
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot encoding changed:\n got %s\nwant %s", got, want)
	}
}
