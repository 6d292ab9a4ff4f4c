package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	ss := make([]sample, len(ds))
	for i, d := range ds {
		ss[i] = sample{lat: d}
	}
	sorted := latencies(ss)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{50, 100 * time.Millisecond}, {99, 198 * time.Millisecond}, {99.9, 200 * time.Millisecond}, {100, 200 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(sorted, c.q); got != c.want {
			t.Errorf("p%v of 1..200 ms = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v, want it", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
	// Three values: p50 is the second (rank ceil(1.5) = 2), p99 the third.
	three := []time.Duration{1, 2, 3}
	if percentile(three, 50) != 2 || percentile(three, 99) != 3 {
		t.Errorf("p50/p99 of 1,2,3 = %v/%v, want 2/3", percentile(three, 50), percentile(three, 99))
	}
}

func TestMintedTokenIsAVideoSDKCrawlerToken(t *testing.T) {
	now := time.Unix(1716000000, 0)
	tok, err := mintToken("key-1", "secret-1", now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The claim names on the wire are the API's (apikey, not apiKey).
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"apikey": "key-1", "permissions": []any{"allow_join", "allow_mod"}, "version": 2.0, "roles": []any{"crawler"},
		"iat": 1716000000.0, "exp": 1716007200.0}
	if fmt.Sprint(payload) != fmt.Sprint(want) {
		t.Errorf("claims = %v, want %v", payload, want)
	}
	// HS256 with the secret verifies; another secret does not.
	parse := func(secret string) error {
		_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now.Add(time.Hour) }))
		return err
	}
	if err := parse("secret-1"); err != nil {
		t.Errorf("token does not verify with its secret: %v", err)
	}
	if err := parse("secret-2"); err == nil {
		t.Error("token verifies with another secret")
	}
	if _, err := mintToken("key-1", "", now, time.Hour); err == nil {
		t.Error("minted a token without a secret")
	}
}

func TestCheckPageRefusesWrongTotalsAndLengths(t *testing.T) {
	page := func(total, n int) []byte {
		type room struct { // in the API's order
			RoomID string `json:"roomId,omitempty"`
			ID     string `json:"id"`
		}
		data := make([]room, n)
		for i := range data {
			data[i] = room{RoomID: fmt.Sprint(i), ID: "x"}
		}
		b, _ := json.Marshal(map[string]any{"pageInfo": map[string]int{"currentPage": 1, "total": total, "perPage": 20}, "data": data})
		return b
	}
	for name, check := range map[string]func([]byte, int, int) error{"scan": checkPage, "decode": decodePage} {
		if err := check(page(45, 5), 45, 5); err != nil {
			t.Errorf("%s: right page refused: %v", name, err)
		}
		if err := check(page(0, 0), 0, 0); err != nil {
			t.Errorf("%s: right empty page refused: %v", name, err)
		}
		for _, c := range []struct{ total, n int }{{44, 5}, {45, 4}, {45, 20}, {450, 5}, {4, 5}} {
			if err := check(page(c.total, c.n), 45, 5); err == nil {
				t.Errorf("%s: page with total %d and %d rooms accepted, want total 45 and 5", name, c.total, c.n)
			}
		}
		good := string(page(45, 5))
		for _, bad := range []string{"not json", good[:len(good)-1], good[:len(good)/2], strings.Replace(good, `{"roomId":"4","id":"x"}`, `{"id":"x"}`, 1),
			strings.Replace(good, `"total":45`, `"totl":45`, 1), strings.Replace(good, `"total":45`, `"total":"45"`, 1)} {
			if err := check([]byte(bad), 45, 5); err == nil {
				t.Errorf("%s: bad page accepted: %s", name, bad)
			}
		}
	}
}

func TestBinsSplitAtSnapshots(t *testing.T) {
	t0 := time.Unix(100, 0)
	snaps := []procSnap{
		{at: t0, cpu: 0, disk: 0},
		{at: t0.Add(time.Second), cpu: 500 * time.Millisecond, disk: 3000},
		{at: t0.Add(2 * time.Second), cpu: 1500 * time.Millisecond, disk: 3000 + 4000},
	}
	ss := []sample{
		{end: 200 * time.Millisecond, lat: time.Millisecond},
		{end: 500 * time.Millisecond, lat: 2 * time.Millisecond},
		{end: time.Second, lat: 3 * time.Millisecond}, // on the boundary: first bin
		{end: 1500 * time.Millisecond, lat: 10 * time.Millisecond},
	}
	got := bins(ss, snaps, 1000)
	want := []Bin{
		{Rooms: 1003, N: 3, Seconds: 1, PerSec: 3, P50Ms: 2, P99Ms: 3, MaxMs: 3, End: t0.Add(time.Second).UTC(), DiskPerOp: 1000, ServerCPUPct: 50},
		{Rooms: 1004, N: 1, Seconds: 1, PerSec: 1, P50Ms: 10, P99Ms: 10, MaxMs: 10, End: t0.Add(2 * time.Second).UTC(), DiskPerOp: 4000, ServerCPUPct: 100},
	}
	if !slices.Equal(got, want) {
		t.Errorf("bins =\n%+v\nwant\n%+v", got, want)
	}
	if s, want := stallSummary(got), "Stretches with a p99 over 20 ms: 0 of 2. Slowest request: 10 ms, in the stretch that ended at 00:01:42 with 1,004 rooms."; s != want {
		t.Errorf("stallSummary = %q, want %q", s, want)
	}
	got[0].P99Ms = 25
	if s := stallSummary(got); !strings.HasPrefix(s, "Stretches with a p99 over 20 ms: 1 of 2.") {
		t.Errorf("stallSummary with one slow stretch = %q", s)
	}
}

func TestNewestSnapshotSkipsUnfinishedOnes(t *testing.T) {
	dir := t.TempDir()
	created := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	write := func(name string, index uint64, state string) {
		d := filepath.Join(dir, "raft", "snapshots", name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		meta, _ := json.Marshal(map[string]any{"Index": index, "Size": len(state)})
		if err := os.WriteFile(filepath.Join(d, "meta.json"), meta, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "state.bin"), []byte(state), 0o600); err != nil {
			t.Fatal(err)
		}
		// meta.json is the last file written: 1.5 s after the directory was named.
		done := created.Add(1500 * time.Millisecond)
		if err := os.Chtimes(filepath.Join(d, "meta.json"), done, done); err != nil {
			t.Fatal(err)
		}
	}
	ms := created.UnixMilli()
	write(fmt.Sprintf("2-100-%d", ms), 100, "aaaa")
	write(fmt.Sprintf("2-250-%d", ms), 250, "bbbbbbbb")
	write(fmt.Sprintf("2-900-%d.tmp", ms), 900, "unfinished")
	s, ok := newestSnapshot(dir)
	if !ok {
		t.Fatal("no snapshot found")
	}
	meta, _ := os.ReadFile(filepath.Join(s.Dir, "meta.json"))
	if s.Index != 250 || s.Bytes != int64(8+len(meta)) {
		t.Errorf("newest = index %d, %d bytes; want index 250, %d bytes", s.Index, s.Bytes, 8+len(meta))
	}
	if s.PersistSeconds != 1.5 {
		t.Errorf("persist time %v s, want 1.5 (directory stamp to meta.json's modification time)", s.PersistSeconds)
	}
	if _, ok := newestSnapshot(t.TempDir()); ok {
		t.Error("found a snapshot in an empty directory")
	}
}
