package main

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/meridian-video/meridian/benchmarks/procfs"
)

func TestParsePIDs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"0", nil},
		{"12", []int{12}},
		{"12,34", []int{12, 34}}, // an edge and its control plane
		{" 12 , 34 ,", []int{12, 34}},
	} {
		got, err := parsePIDs(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parsePIDs(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"x", "12,-3", "1.5"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("parsePIDs(%q): no error", bad)
		}
	}
}

// The CPU of several processes is their sum: the same process twice
// counts twice (its time can only grow between the reads).
func TestServerCPUTimeSumsProcesses(t *testing.T) {
	pid := os.Getpid()
	// Some CPU time to measure (/proc counts in clock ticks).
	for d, _ := procfs.CPUTime(pid); d < 30*time.Millisecond; d, _ = procfs.CPUTime(pid) {
		for i := 0; i < 1e5; i++ {
			_ = fmt.Sprint(i)
		}
	}
	one, err := serverCPUTime([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	two, err := serverCPUTime([]int{pid, pid})
	if err != nil {
		t.Fatal(err)
	}
	if one <= 0 || two < 2*one {
		t.Fatalf("one process %v, the same twice %v: want at least %v", one, two, 2*one)
	}
	// The system part sums the same way and is part of the total (some
	// system time first: writes to /dev/null).
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, sys, _ := procfs.Times(pid); sys < 30*time.Millisecond; _, sys, _ = procfs.Times(pid) {
		for i := 0; i < 1e4; i++ {
			null.Write(make([]byte, 1<<12))
		}
	}
	_, sys1, err1 := serverCPUTimes([]int{pid})
	total2, sys2, err2 := serverCPUTimes([]int{pid, pid})
	if err1 != nil || err2 != nil || sys2 < 2*sys1 || sys2 > total2 {
		t.Fatalf("system time of one process %v, the same twice %v of %v (%v, %v)", sys1, sys2, total2, err1, err2)
	}
	if _, err := serverCPUTime([]int{pid, 1 << 30}); err == nil {
		t.Fatal("a process that does not exist: no error")
	}
}

// Write calls are counted per process and summed the same way; a write to
// a file is one more.
func TestServerWritesCountsWriteCalls(t *testing.T) {
	pid := os.Getpid()
	before, err := serverWrites([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(t.TempDir() + "/w")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 3 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	one, err := serverWrites([]int{pid})
	if err != nil {
		t.Fatal(err)
	}
	if one < before+3 {
		t.Fatalf("write calls %d before three writes, %d after", before, one)
	}
	two, err := serverWrites([]int{pid, pid})
	if err != nil {
		t.Fatal(err)
	}
	if two < 2*one {
		t.Fatalf("one process %d write calls, the same twice %d: want at least %d", one, two, 2*one)
	}
	if _, err := serverWrites([]int{pid, 1 << 30}); err == nil {
		t.Fatal("a process that does not exist: no error")
	}
}
