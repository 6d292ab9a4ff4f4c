package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// Direct SRTP: a subscriber connection's media written by the edge itself.
//
// Through pion, every forwarded packet passes the RTPSender, the SRTP
// session (a sync.Pool buffer, a started-channel receive, a mutex), the
// ICE connection (the selected pair, stats and clocks per write) and the
// UDP mux before it reaches the batch (batchconn.go): per subscriber and
// packet, about as much CPU as the AES-GCM itself (docs/sfu-performance.md,
// "Where the time goes at N = 250"). Once a subscriber's connection is up,
// the forwarders encrypt with an SRTP context of their own, keyed from the
// same DTLS handshake, and queue the datagram on the media socket of the
// selected candidate pair. pion keeps everything else: ICE checks and
// consent, DTLS, SRTCP both ways, and the RTP of connections this cannot
// serve.
//
// pion/webrtc does not export the SRTP keys. They are derived here as pion
// derives them (RFC 5764 §4.2, the TLS exporter of RFC 5705): from the
// master secret and client random its DTLS key log writes, and the server
// random, cipher suite and SRTP profile of the ServerHello the edge sends
// (SettingEngine's ServerHello hook). So this serves the connections whose
// DTLS server the edge is: those it offers with actpass and clients answer
// "active", as browsers and pion do. Anything else (the edge as DTLS
// client, no shared socket for the pair) keeps pion's path for the whole
// connection. RTP header encryption (RFC 9335; pion negotiates it with
// clients that declare it) is applied as pion would.
//
// One SRTP context per connection, never two: pion's context for the
// connection never encrypts an RTP packet once this one is enabled, which
// happens before the subscriber counts as connected, so before any
// forwarder writes (packets written earlier are dropped by pion).

// dtlsSecrets collects what one PeerConnection's DTLS handshake reveals
// through the key log and the ServerHello hook.
type dtlsSecrets struct {
	mu           sync.Mutex
	clientRandom []byte
	master       []byte
	serverRandom []byte
	suite        uint16
	profile      dtls.SRTPProtectionProfile
}

// Write takes pion's key log lines ("CLIENT_RANDOM <hex> <hex>", NSS format).
func (d *dtlsSecrets) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte{'\n'}) {
		f := strings.Fields(string(line))
		if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
			continue
		}
		cr, err1 := hex.DecodeString(f[1])
		ms, err2 := hex.DecodeString(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		d.mu.Lock()
		d.clientRandom, d.master = cr, ms
		d.mu.Unlock()
	}
	return len(p), nil
}

// serverHello notes the ServerHello the edge sends and sends it unchanged.
func (d *dtlsSecrets) serverHello(m handshake.MessageServerHello) handshake.Message {
	r := m.Random.MarshalFixed()
	d.mu.Lock()
	d.serverRandom = append(d.serverRandom[:0], r[:]...)
	d.suite = 0
	if m.CipherSuiteID != nil {
		d.suite = *m.CipherSuiteID
	}
	d.profile = 0
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			d.profile = u.ProtectionProfiles[0]
		}
	}
	d.mu.Unlock()
	return &m
}

// srtpContext derives the edge's (the DTLS server's) SRTP write context.
func (d *dtlsSecrets) srtpContext(cryptex bool) (*srtp.Context, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.master == nil || d.serverRandom == nil || d.profile == 0 {
		return nil, errors.New("sfu: DTLS secrets incomplete (the edge was not the DTLS server)")
	}
	var profile srtp.ProtectionProfile
	switch d.profile {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AEAD_AES_256_GCM:
		profile = srtp.ProtectionProfileAeadAes256Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	case dtls.SRTP_AES128_CM_HMAC_SHA1_32:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_32
	default:
		return nil, fmt.Errorf("sfu: SRTP profile %#x not handled", uint16(d.profile))
	}
	// The PRF hash of TLS 1.2 is SHA-256 except for the SHA-384 suites.
	h := sha256.New
	switch dtls.CipherSuiteID(d.suite) {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		h = sha512.New384
	}
	cfg := srtp.Config{Profile: profile}
	exp := exporter{master: d.master, seed: append(append([]byte(nil), d.clientRandom...), d.serverRandom...), hash: h}
	err := cfg.ExtractSessionKeysFromDTLS(exp, false)
	// The master secret is not needed again: keep no copy of it beyond
	// what pion's DTLS connection holds.
	clear(d.master)
	d.master = nil
	if err != nil {
		return nil, err
	}
	var opts []srtp.ContextOption
	if cryptex {
		opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
	}
	return srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile, opts...)
}

// cryptexDeclared reports whether the client's description declares it
// can receive RTP with encrypted header extensions (RFC 9335), for the
// session or on a media section in use: pion then encrypts the headers of
// what it sends (the edge keeps pion's default policy, "negotiate"; a
// description mixing sections with and without it fails in pion before
// the connection gets here).
func cryptexDeclared(d *sdp.SessionDescription) bool {
	if _, ok := d.Attribute(sdp.AttrKeyCryptex); ok {
		return true
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Port.Value == 0 || m.MediaName.Media == "application" {
			continue
		}
		if _, ok := m.Attribute(sdp.AttrKeyCryptex); ok {
			return true
		}
	}
	return false
}

// exporter is RFC 5705's exporter for DTLS 1.2 without a context value.
type exporter struct {
	master, seed []byte // seed: client random || server random
	hash         func() hash.Hash
}

func (e exporter) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("sfu: exporter context not supported")
	}
	return prf.PHash(e.master, append([]byte(label), e.seed...), length, e.hash)
}

// directPath is where a connection's datagrams go: the media socket of the
// selected pair's local candidate and the remote candidate's address.
type directPath struct {
	conn *batchConn
	addr netip.AddrPort
}

// directSender writes one subscriber connection's RTP (every SSRC of it,
// retransmissions included) through one SRTP context.
type directSender struct {
	path    atomic.Pointer[directPath] // nil: the pair has no usable socket, drop
	stopped atomic.Bool                // the connection failed or closed

	mu  sync.Mutex
	ctx *srtp.Context
	buf [maxDatagram + 64]byte
	hdr rtp.Header // EncryptRTP parses the header again into this
}

// stop drops every packet from now on (the connection failed or closed).
func (d *directSender) stop() {
	d.stopped.Store(true)
	d.path.Store(nil)
}

// writeRTP encrypts and sends one packet.
func (d *directSender) writeRTP(h *rtp.Header, payload []byte) error {
	p := d.path.Load()
	if p == nil {
		return errNoDirectPath
	}
	pkt := rtp.Packet{Header: *h, Payload: payload}
	d.mu.Lock()
	n, err := pkt.MarshalTo(d.buf[:])
	if err == nil {
		var out []byte
		out, err = d.ctx.EncryptRTP(d.buf[:0], d.buf[:n], &d.hdr)
		if err == nil {
			_, err = p.conn.WriteToAddrPort(out, p.addr)
		}
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	p.conn.b.direct.Add(1)
	return nil
}

var errNoDirectPath = errors.New("sfu: no media socket for the selected candidate pair")

// enableDirect switches s to direct SRTP if its connection allows it; it
// runs once, when the connection is first connected, before any forwarder
// writes.
func (s *Subscriber) enableDirect() {
	if s.secrets == nil { // no shared sockets, or pion's path chosen
		return
	}
	batch := s.part.room.sfu.media.batch
	rd := s.pc.CurrentRemoteDescription()
	if rd == nil {
		return
	}
	// Parsed here: rd is pion's own, and its Unmarshal caches into it.
	parsed := &sdp.SessionDescription{}
	if err := parsed.UnmarshalString(rd.SDP); err != nil {
		return
	}
	ctx, err := s.secrets.srtpContext(cryptexDeclared(parsed))
	if err != nil {
		return
	}
	d := &directSender{ctx: ctx}
	// Follow the pair from before it is read, so no change falls between.
	it := s.pc.SCTP().Transport().ICETransport()
	it.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		d.path.Store(batch.pathFor(pair))
		if d.stopped.Load() { // stop ran meanwhile: it wins
			d.path.Store(nil)
		}
	})
	pair, err := it.GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return
	}
	p := batch.pathFor(pair)
	if p == nil {
		return // pion's path serves the connection; d is never used
	}
	d.path.CompareAndSwap(nil, p) // a change seen meanwhile is newer
	s.direct.Store(d)
}

// pathFor finds the media socket a candidate pair's local candidate is on
// (nil if none can be told, or not a UDP host candidate).
func (b *sendBatcher) pathFor(pair *webrtc.ICECandidatePair) *directPath {
	if pair == nil || pair.Local == nil || pair.Remote == nil ||
		pair.Local.Typ != webrtc.ICECandidateTypeHost || pair.Local.Protocol != webrtc.ICEProtocolUDP {
		return nil
	}
	raddr, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return nil
	}
	laddr, _ := netip.ParseAddr(pair.Local.Address)
	b.mu.Lock()
	conns := b.conns
	b.mu.Unlock()
	socks := make([]netip.AddrPort, len(conns))
	for i, c := range conns {
		if la, ok := c.LocalAddr().(*net.UDPAddr); ok {
			socks[i] = la.AddrPort()
		}
	}
	i := pickSocket(socks, netip.AddrPortFrom(laddr, pair.Local.Port), raddr)
	if i < 0 {
		return nil
	}
	return &directPath{conn: conns[i], addr: netip.AddrPortFrom(raddr.Unmap(), pair.Remote.Port)}
}

// pickSocket picks, among the media sockets' addresses, the one a local
// candidate stands for: the socket with the candidate's address and port;
// else, when the candidate's address was rewritten (NAT1To1IPs, a cloud
// VM's public address), the one socket on its port that can reach remote
// (same family; a loopback socket only for a loopback peer and the other
// way round). -1 when none or several qualify.
func pickSocket(socks []netip.AddrPort, local netip.AddrPort, remote netip.Addr) int {
	remote = remote.Unmap()
	pick, n := -1, 0
	for i, s := range socks {
		if s.Port() != local.Port() {
			continue
		}
		a := s.Addr().Unmap()
		if a == local.Addr().Unmap() {
			return i
		}
		if a.Is4() != remote.Is4() || !a.IsUnspecified() && a.IsLoopback() != remote.IsLoopback() {
			continue
		}
		pick, n = i, n+1
	}
	if n != 1 {
		return -1
	}
	return pick
}
