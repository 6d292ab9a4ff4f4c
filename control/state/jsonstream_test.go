package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// FuzzJSONStream holds jsonStream's value boundaries to encoding/json's.
// The input is read as the elements of an array, as a snapshot's rows are:
// when encoding/json accepts the array, jsonStream cuts out the same
// elements; when it does not, one of the cut elements fails to decode (so
// a malformed snapshot never restores). Whether the input comes at once or
// a byte at a time makes no difference, and no input makes it panic.
func FuzzJSONStream(f *testing.F) {
	for _, seed := range []string{
		`{"a":1}, [1,2,{"b":"]}"}] ,"x\"}", 12, -3.5e2,true,false , null`,
		`{"s":"a\\\"b","t":"\\\\","u":"\u00e9]}"}`,
		` [ ] ,{}, "", 0 `,
		`{"rooms":[{"id":"r1","webhook":{"events":["a","b"]}}],"x":null}`,
		`{"a":[}`, `"unterminated`, `{"a":"b\"}`, `]`, `,1`, "\"\xff\"", `00`, `1 2`, `{"a":1]`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, oneByte bool) {
		doc := append(append([]byte("["), in...), ']')
		var want []json.RawMessage
		valid := json.Unmarshal(doc, &want) == nil
		var r io.Reader = bytes.NewReader(doc)
		if oneByte {
			r = iotest.OneByteReader(r) // every value crosses reads
		}
		s := newJSONStream(r)
		var got []string
		err := s.array(func() error {
			v, err := s.value()
			if err != nil {
				return err
			}
			if !json.Valid(v) { // as a row's decoder would refuse it
				return errors.New("invalid element")
			}
			got = append(got, string(v))
			return nil
		})
		if !valid {
			if err == nil {
				if _, ok := s.peek(); !ok {
					t.Fatalf("%q: encoding/json refuses it, every element jsonStream cut decodes: %q", doc, got)
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: encoding/json reads it, jsonStream: %v", doc, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: jsonStream cut %d elements, encoding/json %d", doc, len(got), len(want))
		}
		for i := range want {
			if got[i] != string(want[i]) {
				t.Fatalf("element %d: jsonStream cut %q, encoding/json %q", i, got[i], want[i])
			}
		}
		if _, ok := s.peek(); ok {
			t.Fatalf("%q: bytes left after the array", doc)
		}
	})
}

func TestJSONStreamReadsMembersAndElements(t *testing.T) {
	in := " { \"a\" : [ 1 , {\"x\":\"}\"} ] , \"b\\u0041\":null,\"c\":{\"k\":\"v\"} } "
	s := newJSONStream(iotest.OneByteReader(strings.NewReader(in)))
	var got []string
	err := s.object(func(k string) error {
		switch k {
		case "a":
			return s.array(func() error {
				v, err := s.value()
				got = append(got, "a:"+string(v))
				return err
			})
		case "bA":
			got = append(got, "bA:")
			return s.object(func(string) error { return errors.New("null has members") })
		default:
			var m map[string]string
			err := s.decode(&m)
			got = append(got, k+":"+m["k"])
			return err
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`a:1`, `a:{"x":"}"}`, `bA:`, `c:v`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q, want %q", got, want)
	}
	skip := func() error { _, err := s.value(); return err }
	for _, bad := range []string{`{"a" 1}`, `{"a":1 "b":2}`, `[1 2]`, `{1:2}`, `{"a":1,}`, `[,1]`, `[1,]`, `nul`, `[1`} {
		s = newJSONStream(strings.NewReader(bad))
		var err error
		if bad[0] == '[' {
			err = s.array(skip)
		} else {
			err = s.object(func(string) error { return skip() })
		}
		if err == nil {
			t.Errorf("%s read without an error", bad)
		}
	}
}

// TestMalformedSnapshotsFailToRestore: a snapshot cut short anywhere, or
// with a row broken, fails to restore with an error (never a panic, never a
// partial state swapped in), and the goroutine that inserts rooms while
// they are decoded has stopped when Restore returns.
func TestMalformedSnapshotsFailToRestore(t *testing.T) {
	f := newTestFSM(t)
	fillAllTables(t, f)
	for i := 0; i < 600; i++ { // rooms in more than two batches
		r := benchRoom(i)
		r.ID = "r" + r.ID[1:]
		if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: r}); err != nil {
			t.Fatal(err)
		}
	}
	plain := persist(t, f.FSM)
	before := runtime.NumGoroutine()
	restore := func(b []byte) error {
		g := NewFSM(nil)
		err := g.Restore(io.NopCloser(bytes.NewReader(b)))
		if err != nil && g.Restores() != 0 {
			t.Fatal("a failed restore was counted")
		}
		return err
	}
	if err := restore(plain); err != nil {
		t.Fatal(err)
	}
	last := bytes.LastIndexByte(plain, '}')
	for cut := 0; cut < last; cut += 1 + cut/50 {
		if err := restore(plain[:cut]); err == nil {
			t.Fatalf("a snapshot cut at byte %d of %d restored", cut, len(plain))
		}
	}
	mid := bytes.Index(plain, []byte(`{"id":"r00000000000000000000200"`))
	end := mid + bytes.Index(plain[mid:], []byte(`},{"id":"r`))
	if mid < 0 || end < mid {
		t.Fatal("room 0x200 is not in the snapshot")
	}
	insert := func(at int, s string) []byte {
		return append(append(append([]byte(nil), plain[:at]...), s...), plain[at:]...)
	}
	for name, broken := range map[string][]byte{
		"a room's object closed by a bracket": append(append(append([]byte(nil), plain[:end]...), ']'), plain[end+1:]...),
		"a room that is a number":             insert(mid, `12,`),
		"a room with a bad escape":            insert(mid+1, `"x":"\q",`),
		"a room of the wrong type":            insert(mid+1, `"disabled":"yes",`),
		"rooms not an array":                  bytes.Replace(plain, []byte(`"rooms":[`), []byte(`"rooms":{`), 1),
	} {
		err := restore(broken)
		if err == nil {
			t.Errorf("%s: restored", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	if err := restore(append([]byte(`{"version":2,"rooms":null,"oddField":{"a":[1,"]"]},`), plain[1:]...)); err != nil {
		t.Errorf("null rooms and an unknown field: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the failed restores, %d before", n, before)
	}
	if restore(nil) == nil {
		t.Error("an empty snapshot restored")
	}
}
