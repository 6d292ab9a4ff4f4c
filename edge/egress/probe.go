package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
)

// probeResult is what ffprobe says about a finished file.
type probeResult struct {
	Format   string  // format_name
	Duration float64 // seconds
	Size     int64
	Width    int
	Height   int
	Video    bool
	Audio    bool
	Channels int
	Streams  []probeStream
}

type probeStream struct {
	CodecType     string `json:"codec_type"`
	CodecName     string `json:"codec_name"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	Channels      int    `json:"channels"`
	ChannelLayout string `json:"channel_layout"`
	Duration      string `json:"duration"`
}

// probe runs ffprobe on a file or URL.
func probe(ctx context.Context, ffprobe, target string, cpu *cpuMeter) (probeResult, error) {
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", target)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ps := cmd.ProcessState; ps != nil {
		cpu.addRole("probe", ps.UserTime()+ps.SystemTime())
	}
	if err != nil {
		return probeResult{}, fmt.Errorf("ffprobe %s: %v: %s", target, err, bytes.TrimSpace(errb.Bytes()))
	}
	var v struct {
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
			Size       string `json:"size"`
		} `json:"format"`
		Streams []probeStream `json:"streams"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		return probeResult{}, fmt.Errorf("ffprobe %s: %w", target, err)
	}
	r := probeResult{Format: v.Format.FormatName, Streams: v.Streams}
	r.Duration, _ = strconv.ParseFloat(v.Format.Duration, 64)
	r.Size, _ = strconv.ParseInt(v.Format.Size, 10, 64)
	for _, s := range v.Streams {
		switch s.CodecType {
		case "video":
			if !r.Video {
				r.Video, r.Width, r.Height = true, s.Width, s.Height
			}
		case "audio":
			if !r.Audio {
				r.Audio, r.Channels = true, s.Channels
			}
		}
	}
	return r, nil
}
