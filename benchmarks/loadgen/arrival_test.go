package main

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

func TestArrivalsKeepTheNewestPerSlot(t *testing.T) {
	var a arrivals
	a.put(0xdeadbeef, 7, 100)
	a.put(0xdeadbeef, 8, 200)
	if at, ok := a.get(0xdeadbeef, 7); !ok || at != 100 {
		t.Errorf("get(7) = %v %v, want 100", at, ok)
	}
	if _, ok := a.get(0xdeadbeef, 9); ok {
		t.Error("a packet never seen has an arrival")
	}
	if _, ok := a.get(0x1, 7); ok {
		t.Error("the same sequence number of another SSRC has an arrival")
	}
	// SSRC 0, sequence 0 is a real packet, not an empty slot.
	if _, ok := a.get(0, 0); ok {
		t.Error("an empty table has packet (0, 0)")
	}
	a.put(0, 0, 5)
	if at, ok := a.get(0, 0); !ok || at != 5 {
		t.Errorf("get(0, 0) = %v %v", at, ok)
	}
	// A packet whose slot was reused is gone, not answered with the other's time.
	_, i := arrivalKey(0xdeadbeef, 7)
	for seq := uint16(0); ; seq++ {
		if _, j := arrivalKey(0x42, seq); j == i {
			a.put(0x42, seq, 300)
			break
		}
	}
	if _, ok := a.get(0xdeadbeef, 7); ok {
		t.Error("an overwritten packet still has an arrival")
	}
}

func rtpDatagram(ssrc uint32, seq uint16, pt byte) []byte {
	b := make([]byte, 40)
	b[0], b[1] = 0x80, pt
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return b
}

func TestOnlyRTPIsNoted(t *testing.T) {
	var a arrivals
	a.noteRTP(rtpDatagram(11, 1, 96), 1)
	a.noteRTP(rtpDatagram(11, 2, 0x80|111), 2) // marker bit set
	sr := rtpDatagram(11, 3, 200)              // RTCP sender report
	a.noteRTP(sr, 3)
	stun := rtpDatagram(11, 4, 96)
	stun[0] = 0x00 // STUN binding request
	a.noteRTP(stun, 4)
	dtls := rtpDatagram(11, 5, 96)
	dtls[0] = 22 // DTLS handshake
	a.noteRTP(dtls, 5)
	a.noteRTP(rtpDatagram(11, 6, 96)[:11], 6) // too short
	for seq, want := range map[uint16]bool{1: true, 2: true, 3: false, 4: false, 5: false, 6: false} {
		if _, ok := a.get(11, seq); ok != want {
			t.Errorf("seq %d noted = %v, want %v", seq, ok, want)
		}
	}
}

// A datagram read through the timestamping socket has its kernel arrival
// noted, on the clock the stamps use, between its send and its read.
func TestStampedConnNotesKernelArrival(t *testing.T) {
	c, err := listenStamped()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := stampNow()
	if _, err := s.Write(rtpDatagram(77, 1234, 96)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := c.ReadFrom(buf)
	after := stampNow()
	if err != nil || n != 40 || from.String() != s.LocalAddr().String() {
		t.Fatalf("read %d bytes from %v: %v", n, from, err)
	}
	at, ok := c.arr.get(77, 1234)
	if !ok {
		t.Fatal("no arrival noted for the datagram")
	}
	if at < before || at > after {
		t.Errorf("kernel arrival %d not between send %d and read %d", at, before, after)
	}
}
