package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDiskstatsWrittenReadsSectorsOfTheDevice: the sectors-written field
// (the 10th) of the device's own line, in bytes; other devices and
// partitions are not summed in.
func TestDiskstatsWrittenReadsSectorsOfTheDevice(t *testing.T) {
	const stats = ` 253       0 zram0 4 0 32 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 91210 4302 6048322 21000 777812 512094 123456 987654 0 1060000 1010000 0 0 0 0 12000 3000
 254       1 vda1 10 0 80 1 99 0 999 1 0 2 2 0 0 0 0 0 0
`
	got, err := diskstatsWritten(stats, "254 0")
	if err != nil || got != 123456*512 {
		t.Fatalf("vda: %d, %v; want %d", got, err, 123456*512)
	}
	if got, err := diskstatsWritten(stats, "254 1"); err != nil || got != 999*512 {
		t.Fatalf("vda1: %d, %v", got, err)
	}
	if _, err := diskstatsWritten(stats, "8 0"); err == nil {
		t.Fatal("a device that is not listed must be an error, not 0 bytes written")
	}
}

// TestDeviceWritesSeeAnFsync: 4 MiB written and synced next to this test
// show up in the device's counter. On a file system without a device line
// (tmpfs, overlay) the benchmark must leave the column empty instead: then
// dataDevice names no device.
func TestDeviceWritesSeeAnFsync(t *testing.T) {
	dir, err := os.MkdirTemp(".", "devtest")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dev, err := deviceOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	before, err := deviceWrites(dev)
	if err != nil {
		if got := dataDevice(nodeList{{Name: "n", Data: dir}}); got != "" {
			t.Fatalf("%s has no device line (%v), yet dataDevice names %q", dir, err, got)
		}
		return
	}
	f, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	if _, err := f.Write(buf); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	after, err := deviceWrites(dev)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < int64(len(buf)) {
		t.Fatalf("device %s counted %d bytes for a %d-byte synced write", dev, after-before, len(buf))
	}
}
