package egress

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
)

// RTMP out: the encoder writes one FLV stream to its stdout; fanout hands
// every chunk to one relay per destination (`ffmpeg -c copy` to the RTMP
// URL), each behind its own bounded queue and writer goroutine, so one
// slow or dead server never stalls the encoder or the others. A relay that
// exits (connection refused, handshake rejected…) or stops consuming for
// stallTimeout (a server that accepts TCP and never answers) is failed
// with a reason; the job fails when every relay has.

type relay struct {
	out    egressapi.RTMPOutput
	proc   *proc
	queue  chan []byte
	done   chan struct{} // writer goroutine ended
	mu     sync.Mutex
	state  egressapi.State
	err    string
	lastOK time.Time // last completed write, or start
	queued int       // chunks waiting
}

type fanout struct {
	log     *slog.Logger
	now     func() time.Time
	stall   time.Duration
	onFail  func(error) // every relay failed
	changed func()      // a relay's state changed
	cpu     *cpuMeter
	relays  []*relay
	stopped chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// relayQueue bounds memory per destination (chunks of up to 32 KiB).
const relayQueue = 512

func startFanout(ffmpeg string, outs []egressapi.RTMPOutput, f *fanout) error {
	f.stopped = make(chan struct{})
	for _, o := range outs {
		p, err := startProc(procSpec{
			name: "rtmp relay",
			bin:  ffmpeg,
			args: []string{"-hide_banner", "-loglevel", "error", "-nostdin",
				"-f", "flv", "-i", "pipe:3", "-c", "copy", "-rw_timeout", fmt.Sprint(f.stall.Microseconds()),
				"-f", "flv", o.Target()},
			inputs: 1,
		})
		if err != nil {
			f.abort()
			return err
		}
		r := &relay{out: o, proc: p, queue: make(chan []byte, relayQueue), done: make(chan struct{}),
			state: egressapi.StateRunning, lastOK: f.now()}
		f.relays = append(f.relays, r)
		f.wg.Add(2)
		go f.write(r)
		go f.watch(r)
	}
	f.wg.Add(1)
	go f.monitor()
	return nil
}

// redact drops credentials and the path (which may embed a stream key).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "rtmp"
	}
	return u.Scheme + "://" + u.Host
}

// Write implements io.Writer for the encoder's stdout. It never blocks.
func (f *fanout) Write(p []byte) (int, error) {
	chunk := append([]byte(nil), p...)
	for _, r := range f.relays {
		r.mu.Lock()
		running := r.state == egressapi.StateRunning
		r.mu.Unlock()
		if !running {
			continue
		}
		select {
		case r.queue <- chunk:
			r.mu.Lock()
			r.queued++
			r.mu.Unlock()
		default:
			f.failRelay(r, redact(r.out.URL)+": destination does not keep up (send queue full)")
		}
	}
	return len(p), nil
}

func (f *fanout) write(r *relay) {
	defer f.wg.Done()
	defer close(r.done)
	in := r.proc.inputs[0]
	for {
		select {
		case b, ok := <-r.queue:
			if !ok {
				in.Close()
				return
			}
			_, err := in.Write(b)
			r.mu.Lock()
			r.queued--
			r.lastOK = f.now()
			r.mu.Unlock()
			if err != nil {
				return // watch reports the relay's own reason
			}
		case <-r.proc.done:
			return
		}
	}
}

// watch reports a relay that exits before the job ends.
func (f *fanout) watch(r *relay) {
	defer f.wg.Done()
	select {
	case <-r.proc.done:
		f.cpuAdd(r.proc)
		select {
		case <-f.stopped:
			if r.proc.err != nil {
				f.failRelay(r, relayReason(r))
			}
			return
		default:
		}
		f.failRelay(r, relayReason(r))
	case <-f.stopped:
	}
}

func (f *fanout) cpuAdd(p *proc) { f.cpu.add(p) }

// relayReason is why a relay exited, from ffmpeg's complaint, with
// the stream key scrubbed (status and errors are stored and shown).
func relayReason(r *relay) string {
	msg := r.proc.stderr.complaint()
	if msg == "" {
		msg = "relay exited"
		if r.proc.err != nil {
			msg = r.proc.err.Error()
		}
	}
	return scrubKey(r.out, msg)
}

// scrubKey replaces the stream key in msg.
func scrubKey(o egressapi.RTMPOutput, msg string) string {
	if o.StreamKey == "" {
		return msg
	}
	return strings.ReplaceAll(msg, o.StreamKey, "***")
}

// monitor fails relays that stopped consuming.
func (f *fanout) monitor() {
	defer f.wg.Done()
	t := time.NewTicker(f.stall / 4)
	defer t.Stop()
	for {
		select {
		case <-f.stopped:
			return
		case <-t.C:
		}
		now := f.now()
		for _, r := range f.relays {
			r.mu.Lock()
			stuck := r.state == egressapi.StateRunning && r.queued > 0 && now.Sub(r.lastOK) > f.stall
			r.mu.Unlock()
			if stuck {
				f.failRelay(r, fmt.Sprintf("%s: no progress for %s (server unreachable or not answering)", redact(r.out.URL), f.stall))
			}
		}
	}
}

func (f *fanout) failRelay(r *relay, reason string) {
	reason = scrubKey(r.out, reason)
	r.mu.Lock()
	if r.state != egressapi.StateRunning {
		r.mu.Unlock()
		return
	}
	r.state, r.err = egressapi.StateFailed, reason
	r.mu.Unlock()
	go r.proc.kill()
	if f.changed != nil {
		f.changed()
	}
	for _, o := range f.relays {
		o.mu.Lock()
		running := o.state == egressapi.StateRunning
		o.mu.Unlock()
		if running {
			return
		}
	}
	select {
	case <-f.stopped:
	default:
		if f.onFail != nil {
			f.onFail(errors.New("every RTMP destination failed: " + f.reasons()))
		}
	}
}

func (f *fanout) reasons() string {
	s := ""
	for i, r := range f.relays {
		r.mu.Lock()
		if i > 0 {
			s += "; "
		}
		s += r.err
		r.mu.Unlock()
	}
	return s
}

// statuses reports each destination.
func (f *fanout) statuses() []egressapi.OutputStatus {
	out := make([]egressapi.OutputStatus, 0, len(f.relays))
	for _, r := range f.relays {
		r.mu.Lock()
		out = append(out, egressapi.OutputStatus{URL: r.out.URL, State: r.state, Error: r.err})
		r.mu.Unlock()
	}
	return out
}

// finish lets every running relay drain and exit (the encoder has ended,
// so no more Writes come).
func (f *fanout) finish(timeout time.Duration) {
	f.once.Do(func() { close(f.stopped) })
	for _, r := range f.relays {
		close(r.queue)
	}
	deadline := time.Now().Add(timeout)
	for _, r := range f.relays {
		_ = r.proc.wait(max(time.Until(deadline), time.Millisecond))
		r.mu.Lock()
		if r.state == egressapi.StateRunning {
			if r.proc.err != nil {
				r.state, r.err = egressapi.StateFailed, relayReason(r)
			} else {
				r.state = egressapi.StateStopped
			}
		}
		r.mu.Unlock()
	}
	f.wg.Wait()
}

// abort kills every relay.
func (f *fanout) abort() {
	f.once.Do(func() { close(f.stopped) })
	for _, r := range f.relays {
		r.proc.kill()
		r.mu.Lock()
		if r.state == egressapi.StateRunning {
			r.state = egressapi.StateStopped
		}
		r.mu.Unlock()
	}
	f.wg.Wait()
}
