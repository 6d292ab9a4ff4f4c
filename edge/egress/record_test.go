package egress

import (
	"encoding/binary"
	"math"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// A participant recording is one file with the participant's camera and
// microphone, named as VideoSDK names them, as long as the recording ran.
func TestParticipantRecording(t *testing.T) {
	for _, tc := range []struct {
		format, video, audio, container string
	}{
		{"webm", "vp8", "opus", "matroska,webm"},
		{"mp4", "h264", "aac", "mov,mp4,m4a,3gp,3g2,mj2"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			s := startSFU(t)
			tr := newRunner(t, s, nil)
			publish(t, s, "room-p", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
			begin := time.Now()
			if _, err := tr.Start(egressapi.Spec{ID: "p-1", Kind: egressapi.KindParticipant, RoomID: "room-p", SessionID: "sess",
				ParticipantID: "alice", FileFormat: tc.format}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			elapsed := time.Since(begin).Seconds()
			st := tr.stopAndWait(t, "p-1")
			if st.State != egressapi.StateStopped || len(st.Files) != 1 {
				t.Fatalf("status %+v", st)
			}
			f := st.Files[0]
			if !regexp.MustCompile(`^individual-recordings/sess/alice/participant_recording_alice_[0-9]{13}\.` + tc.format + `$`).MatchString(f.Key) {
				t.Fatalf("key %q", f.Key)
			}
			p := egresstest.FFprobe(t, storedPath(t, tr.local, f.Key))
			if c := p.Codecs(); c["video"] != tc.video || c["audio"] != tc.audio {
				t.Fatalf("codecs %v, want %s + %s", c, tc.video, tc.audio)
			}
			if w, h := p.VideoSize(); w != 640 || h != 360 {
				t.Fatalf("size %dx%d, want the publisher's 640x360", w, h)
			}
			if p.Format.FormatName != tc.container || f.Format != tc.container {
				t.Fatalf("container %q (reported %q), want %q", p.Format.FormatName, f.Format, tc.container)
			}
			if d := p.Duration(); !near(d, elapsed, 1) {
				t.Fatalf("duration %.2f s, want %.2f ± 1 s", d, elapsed)
			}
			for _, typ := range []string{"v", "a"} {
				if d := streamSpan(t, storedPath(t, tr.local, f.Key), typ); !near(d, elapsed, 1) {
					t.Fatalf("stream %s spans %.2f s, want %.2f ± 1 s", typ, d, elapsed)
				}
			}
			if f.Start.Before(begin) || f.Start.After(begin.Add(time.Second)) || !f.End.After(f.Start) {
				t.Fatalf("file span %v – %v, recording began %v", f.Start, f.End, begin)
			}
		})
	}
}

// A participant whose video RTP clock runs at half the real rate (frames
// sent at 30 per second, stamped 1/60 s apart, as from a sender that falls
// behind) is recorded on the wall clock: his video lasts until the
// recording stops, as his audio does, instead of ending seconds early
// with no gap in the file.
func TestParticipantRecordingFollowsTheWallClock(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	publish(t, s, "room-c", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg"), VideoClock: 0.5})
	begin := time.Now()
	if _, err := tr.Start(egressapi.Spec{ID: "p-clock", Kind: egressapi.KindParticipant, RoomID: "room-c", SessionID: "sess",
		ParticipantID: "alice", FileFormat: "webm"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	elapsed := time.Since(begin).Seconds()
	st := tr.stopAndWait(t, "p-clock")
	if st.State != egressapi.StateStopped || len(st.Files) != 1 {
		t.Fatalf("status %+v", st)
	}
	file := storedPath(t, tr.local, st.Files[0].Key)
	vf, vl := streamTimes(t, file, "v")
	af, al := streamTimes(t, file, "a")
	if !near(al, elapsed, 1) || !near(vl, elapsed, 1) {
		t.Fatalf("video %.2f to %.2f s, audio %.2f to %.2f s; the recording ran %.2f s: both must last until it stopped (± 1 s)", vf, vl, af, al, elapsed)
	}
	t.Logf("recording ran %.2f s: video %.2f to %.2f s, audio %.2f to %.2f s", elapsed, vf, vl, af, al)
}

// A track recording starts a new file each time the track is re-enabled;
// an audio track recording holds audio only.
func TestTrackRecording(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	alice := publish(t, s, "room-t", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	begin := time.Now()
	for _, spec := range []egressapi.Spec{
		{ID: "t-video", Kind: egressapi.KindTrack, RoomID: "room-t", SessionID: "sess", ParticipantID: "alice", TrackKind: "video", FileFormat: "mp4"},
		{ID: "t-audio", Kind: egressapi.KindTrack, RoomID: "room-t", SessionID: "sess", ParticipantID: "alice", TrackKind: "audio"},
	} {
		if _, err := tr.Start(spec); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	alice.SetMuted("video", true)
	time.Sleep(time.Second)
	alice.SetMuted("video", false)
	time.Sleep(2 * time.Second)
	video := tr.stopAndWait(t, "t-video")
	audioElapsed := time.Since(begin).Seconds()
	audio := tr.stopAndWait(t, "t-audio")

	if video.State != egressapi.StateStopped || len(video.Files) != 2 {
		t.Fatalf("video track recording: want 2 files (before the mute, after it), got %+v", video)
	}
	for i, f := range video.Files {
		if !regexp.MustCompile(`^individual-recordings/sess/alice/video/track_recording_alice_video_[0-9]{13}\.mp4$`).MatchString(f.Key) {
			t.Fatalf("key %q", f.Key)
		}
		p := egresstest.FFprobe(t, storedPath(t, tr.local, f.Key))
		if c := p.Codecs(); c["video"] != "h264" || c["audio"] != "" {
			t.Fatalf("file %d codecs %v, want h264 only", i, c)
		}
		if d := p.Duration(); d < 1 || d > 3 {
			t.Fatalf("file %d lasts %.2f s, want the ~2 s around the mute", i, d)
		}
	}
	if !video.Files[1].Start.After(video.Files[0].End) {
		t.Fatalf("second file (%v) does not follow the first (ends %v)", video.Files[1].Start, video.Files[0].End)
	}
	if audio.State != egressapi.StateStopped || len(audio.Files) != 1 {
		t.Fatalf("audio track recording: %+v", audio)
	}
	p := egresstest.FFprobe(t, storedPath(t, tr.local, audio.Files[0].Key))
	if c := p.Codecs(); c["audio"] != "opus" || c["video"] != "" {
		t.Fatalf("audio file codecs %v, want opus only", c)
	}
	if d := p.Duration(); !near(d, audioElapsed, 1) {
		t.Fatalf("audio file lasts %.2f s, want %.2f ± 1 s (a muted camera does not cut the microphone)", d, audioElapsed)
	}
	if audio.Files[0].Type != "audio" || video.Files[0].Type != "video" {
		t.Fatalf("file types %q %q", audio.Files[0].Type, video.Files[0].Type)
	}
}

// pcmStereo decodes a file to 48 kHz stereo samples.
func pcmStereo(t *testing.T, file string) (left, right []float64) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", file, "-f", "s16le", "-ac", "2", "-ar", "48000", "pipe:1").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	for i := 0; i+3 < len(out); i += 4 {
		left = append(left, float64(int16(binary.LittleEndian.Uint16(out[i:])))/32768)
		right = append(right, float64(int16(binary.LittleEndian.Uint16(out[i+2:])))/32768)
	}
	return left, right
}

// tone is the power of frequency f in samples (Goertzel).
func tone(samples []float64, f float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	k := 2 * math.Cos(2*math.Pi*f/48000)
	var s1, s2 float64
	for _, x := range samples {
		s1, s2 = x+k*s1-s2, s1
	}
	return (s1*s1 + s2*s2 - k*s1*s2) / float64(len(samples)*len(samples))
}

// Merge puts channel1's recordings on the left and channel2's on the
// right, each at its place on the session's timeline.
func TestMergeChannelLayout(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	publish(t, s, "room-m", "alice", egresstest.Options{Audio: mediaFile(t, "440.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "m-alice", Kind: egressapi.KindParticipant, RoomID: "room-m", SessionID: "sess", ParticipantID: "alice"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // bob joins later: his audio must start later
	publish(t, s, "room-m", "bob", egresstest.Options{Audio: mediaFile(t, "1000.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "m-bob", Kind: egressapi.KindParticipant, RoomID: "room-m", SessionID: "sess", ParticipantID: "bob"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	a := tr.stopAndWait(t, "m-alice")
	b := tr.stopAndWait(t, "m-bob")
	if len(a.Files) != 1 || len(b.Files) != 1 {
		t.Fatalf("participant recordings: %+v %+v", a, b)
	}
	in := func(st egressapi.Status) []egressapi.MergeInput {
		f := st.Files[0]
		return []egressapi.MergeInput{{ParticipantID: f.ParticipantID, RecordingID: st.ID, File: egressapi.FileRef{Storage: f.Storage, Key: f.Key}, Start: f.Start}}
	}
	if _, err := tr.Start(egressapi.Spec{ID: "merge-1", Kind: egressapi.KindMerge, SessionID: "sess", Channel1: in(a), Channel2: in(b)}); err != nil {
		t.Fatal(err)
	}
	m := tr.waitEnd(t, "merge-1")
	if m.State != egressapi.StateStopped || len(m.Files) != 1 || m.Files[0].Key != "merged-recordings/sess/merge-1.mp3" {
		t.Fatalf("merge: %+v", m)
	}
	file := storedPath(t, tr.local, m.Files[0].Key)
	p := egresstest.FFprobe(t, file)
	if len(p.Streams) != 1 || p.Streams[0].CodecName != "mp3" || p.Streams[0].Channels != 2 {
		t.Fatalf("merge output streams %+v, want one stereo mp3 stream", p.Streams)
	}
	wantDur := b.Files[0].End.Sub(a.Files[0].Start).Seconds()
	if d := p.Duration(); !near(d, wantDur, 0.5) {
		t.Fatalf("merge lasts %.2f s, want the span of both recordings, %.2f s", d, wantDur)
	}
	left, right := pcmStereo(t, file)
	offset := int(b.Files[0].Start.Sub(a.Files[0].Start).Seconds() * 48000)
	if offset < 48000 {
		t.Fatalf("bob's recording starts %.2f s after alice's; the test needs ≥ 1 s", float64(offset)/48000)
	}
	// Where both speak: alice (440 Hz) left, bob (1000 Hz) right.
	both := func(ch []float64) []float64 { return ch[offset+12000 : min(len(ch), offset+60000)] }
	l440, l1000 := tone(both(left), 440), tone(both(left), 1000)
	r440, r1000 := tone(both(right), 440), tone(both(right), 1000)
	if l440 < 20*l1000 || r1000 < 20*r440 {
		t.Fatalf("channel powers: left 440=%.3g 1000=%.3g, right 440=%.3g 1000=%.3g; want 440 Hz left, 1000 Hz right", l440, l1000, r440, r1000)
	}
	// Before bob joined, the right channel is silent.
	early := right[12000 : offset-12000]
	if e := tone(early, 1000); e > r1000/100 {
		t.Fatalf("right channel has bob's tone (%.3g) before he joined (later %.3g)", e, r1000)
	}
}
