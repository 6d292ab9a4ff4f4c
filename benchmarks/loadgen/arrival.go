package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"unsafe"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"golang.org/x/sys/unix"
)

// Arrival at the socket. What a subscriber's read loop sees is late by
// however long the load generator took to get to the packet: hundreds of
// subscribers share its one core, and a fan-out burst of N copies is
// decrypted one after the other. That is the generator's delay, not the
// server's. A few "probe" subscribers therefore receive on a socket of their
// own with SO_TIMESTAMPNS: the kernel stamps each datagram when it is queued
// on the socket, which on loopback happens inside the server's send call.
// The socket's reader notes that time under the packet's SSRC and sequence
// number (SRTP leaves the RTP header in clear), and the sink, once pion has
// decrypted the packet and the publisher's stamp is readable, looks it up:
// arrival − stamp is the time from the publisher's send to the server's
// send of this copy, with no generator scheduling after it.
//
// Both ends use CLOCK_REALTIME (the kernel's timestamps are wall-clock), so
// stamps are wall-clock nanoseconds; over a 10-s window on one host a clock
// step is the only error, and the tests of the read path do not depend on it.

// arrivalSlots is the size of a socket's arrival table: at 350 packets/s
// per subscriber it holds more than 10 s of packets, far more than pion
// keeps packets before the sink reads them.
const arrivalSlots = 4096

// arrivals maps (SSRC, sequence number) to the kernel's arrival time of the
// newest packet with them.
type arrivals struct {
	mu   sync.Mutex
	keys [arrivalSlots]uint64 // 1<<63 | ssrc<<16 | seq, 0 = empty
	at   [arrivalSlots]int64
}

func arrivalKey(ssrc uint32, seq uint16) (uint64, int) {
	k := 1<<63 | uint64(ssrc)<<16 | uint64(seq)
	return k, int((uint64(ssrc)*0x9E3779B1 + uint64(seq)) % arrivalSlots)
}

func (a *arrivals) put(ssrc uint32, seq uint16, at int64) {
	k, i := arrivalKey(ssrc, seq)
	a.mu.Lock()
	a.keys[i], a.at[i] = k, at
	a.mu.Unlock()
}

// get returns the arrival time of the packet (SSRC, seq) if it is still in
// the table.
func (a *arrivals) get(ssrc uint32, seq uint16) (int64, bool) {
	k, i := arrivalKey(ssrc, seq)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys[i] != k {
		return 0, false
	}
	return a.at[i], true
}

// noteRTP records the arrival of datagram b if it is RTP (not STUN, DTLS or
// RTCP: RFC 7983 first byte 128–191, RFC 5761 payload types 192–223 are RTCP).
func (a *arrivals) noteRTP(b []byte, at int64) {
	if len(b) < 12 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
		return
	}
	a.put(binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint16(b[2:4]), at)
}

// stampedConn is a UDP socket whose reads note each RTP packet's kernel
// arrival time.
type stampedConn struct {
	*net.UDPConn
	arr *arrivals
	oob []byte // only the mux's one reader goroutine reads
}

func listenStamped() (*stampedConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		c.Close()
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %v %v", err, serr)
	}
	return &stampedConn{UDPConn: c, arr: &arrivals{}, oob: make([]byte, 128)}, nil
}

// ReadFrom is what pion's UDP mux calls for every datagram.
func (c *stampedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, oobn, _, addr, err := c.ReadMsgUDP(b, c.oob)
	if err != nil {
		return n, nil, err // not a typed nil *net.UDPAddr in a non-nil net.Addr
	}
	if at, ok := kernelTime(c.oob[:oobn]); ok {
		c.arr.noteRTP(b[:n], at)
	}
	return n, addr, nil
}

// kernelTime is the SCM_TIMESTAMPNS of a control message, in ns.
func kernelTime(oob []byte) (int64, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return ts.Nano(), true
		}
	}
	return 0, false
}

// probeAPI is a webrtc.API like newAPI's whose PeerConnections all receive
// on one timestamping socket; its arrivals are what the sinks of those
// PeerConnections look up.
func probeAPI(feedback string, verbose bool) (*webrtc.API, *arrivals, func(), error) {
	c, err := listenStamped()
	if err != nil {
		return nil, nil, nil, err
	}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c})
	api, err := newAPIWith(feedback, verbose, func(se *webrtc.SettingEngine) { se.SetICEUDPMux(mux) })
	if err != nil {
		mux.Close()
		return nil, nil, nil, err
	}
	return api, c.arr, func() { _ = mux.Close() }, nil
}
