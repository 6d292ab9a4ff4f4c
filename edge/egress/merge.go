package egress

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// Merge mixes participant recordings into one stereo MP3 — the documented
// channel layout:
//
//	left  (FL) = the recordings of channel1, mixed
//	right (FR) = the recordings of channel2, mixed
//
// Every recording is placed on the session timeline at its own start
// (MergeInput.Start), which begins at the earliest of them, so people who
// joined late are heard when they spoke. Only audio is used; each input is
// downmixed to mono first. A channel with no recordings is silent.

type mergeInput struct {
	path  string
	start time.Time
	dur   float64
}

func runMerge(ctx context.Context, env decoderEnv, ffprobe string, targets []storage.Target, spec egressapi.Spec, dir, out string) error {
	fetch := func(ins []egressapi.MergeInput, tag string) ([]mergeInput, error) {
		var res []mergeInput
		for i, in := range ins {
			t, err := storage.Find(targets, in.File.Storage)
			if err != nil {
				return nil, err
			}
			p := filepath.Join(dir, fmt.Sprintf("%s-%d%s", tag, i, filepath.Ext(in.File.Key)))
			if err := t.Get(ctx, in.File.Key, p); err != nil {
				return nil, fmt.Errorf("recording %s of %s: %w", in.RecordingID, in.ParticipantID, err)
			}
			pr, err := probe(ctx, ffprobe, p, env.cpu)
			if err != nil {
				return nil, err
			}
			if !pr.Audio {
				return nil, fmt.Errorf("recording %s of %s has no audio", in.RecordingID, in.ParticipantID)
			}
			res = append(res, mergeInput{path: p, start: in.Start, dur: pr.Duration})
		}
		return res, nil
	}
	left, err := fetch(spec.Channel1, "l")
	if err != nil {
		return err
	}
	right, err := fetch(spec.Channel2, "r")
	if err != nil {
		return err
	}
	all := append(append([]mergeInput(nil), left...), right...)
	origin := all[0].start
	for _, in := range all {
		if in.start.Before(origin) {
			origin = in.start
		}
	}
	total := 0.0
	for _, in := range all {
		total = max(total, in.start.Sub(origin).Seconds()+in.dur)
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}
	for _, in := range all {
		args = append(args, "-i", in.path)
	}
	var fc []string
	channel := func(ins []mergeInput, first int, label string) {
		if len(ins) == 0 {
			fc = append(fc, fmt.Sprintf("anullsrc=channel_layout=mono:sample_rate=48000[%s]", label))
			return
		}
		var names string
		for i, in := range ins {
			delay := in.start.Sub(origin).Milliseconds()
			n := fmt.Sprintf("%s%d", label, i)
			fc = append(fc, fmt.Sprintf("[%d:a]aresample=48000,aformat=channel_layouts=mono,adelay=%d:all=1,apad[%s]", first+i, delay, n))
			names += "[" + n + "]"
		}
		if len(ins) == 1 {
			fc = append(fc, fmt.Sprintf("%sanull[%s]", names, label))
		} else {
			fc = append(fc, fmt.Sprintf("%samix=inputs=%d:normalize=0:duration=longest[%s]", names, len(ins), label))
		}
	}
	channel(left, 0, "L")
	channel(right, len(left), "R")
	fc = append(fc, "[L][R]join=inputs=2:channel_layout=stereo:map=0.0-FL|1.0-FR[out]")
	args = append(args, "-filter_complex", strings.Join(fc, ";"), "-map", "[out]",
		"-t", fmt.Sprintf("%.3f", total), "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3", out)
	p, err := startProc(procSpec{name: "merge", bin: env.ffmpeg, args: args})
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
	env.cpu.add(p)
	return p.err
}
