package egress

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/meridian-video/meridian/shared/egressapi"
)

// Encoder settings: H.264 (x264, veryfast) + AAC for every composed
// output. A keyframe every 2 s (HLS: every segment), so RTMP viewers and
// HLS segments start cleanly.

// videoBitrate in kbit/s for a frame height.
func videoBitrate(h int) int {
	switch {
	case h >= 1080:
		return 4500
	case h >= 720:
		return 2500
	case h >= 480:
		return 1200
	case h >= 360:
		return 800
	}
	return 500
}

func x264Args(stream string, fps, gop, kbps int) []string {
	s := func(name string) string {
		if stream == "" {
			return name
		}
		return name + ":" + stream
	}
	return []string{
		s("-c:v"), "libx264", s("-preset"), "veryfast", s("-profile:v"), "high",
		s("-b:v"), fmt.Sprintf("%dk", kbps), s("-maxrate"), fmt.Sprintf("%dk", kbps*3/2), s("-bufsize"), fmt.Sprintf("%dk", kbps*2),
		s("-g"), fmt.Sprint(gop), s("-keyint_min"), fmt.Sprint(gop), s("-sc_threshold"), "0",
	}
}

var aacArgs = []string{"-c:a", "aac", "-b:a", "128k", "-ar", "48000"}

// mp4Args: composite recording to a file.
func mp4Args(cfg egressapi.Config, fps int, out string) []string {
	var a []string
	if cfg.Mode != egressapi.ModeAudio {
		_, h := cfg.Size()
		a = append(a, "-map", "0:v", "-map", "1:a")
		a = append(a, x264Args("", fps, 2*fps, videoBitrate(min(h, widthOf(cfg))))...)
		a = append(a, "-pix_fmt", "yuv420p")
	} else {
		a = append(a, "-map", "0:a")
	}
	a = append(a, aacArgs...)
	return append(a, "-movflags", "+faststart", "-f", "mp4", out)
}

func widthOf(cfg egressapi.Config) int { w, _ := cfg.Size(); return w }

// flvArgs: RTMP, one FLV stream on stdout that relays copy to each server.
func flvArgs(cfg egressapi.Config, fps int) []string {
	var a []string
	if cfg.Mode != egressapi.ModeAudio {
		w, h := cfg.Size()
		a = append(a, "-map", "0:v", "-map", "1:a")
		a = append(a, x264Args("", fps, 2*fps, videoBitrate(min(w, h)))...)
		a = append(a, "-pix_fmt", "yuv420p")
	} else {
		a = append(a, "-map", "0:a")
	}
	a = append(a, aacArgs...)
	return append(a, "-flvflags", "no_duration_filesize", "-f", "flv", "pipe:1")
}

// rendition is one HLS variant.
type rendition struct{ w, h, kbps int }

// renditions: the config size first, then lower heights from 720, 480,
// 360 (same aspect).
func renditions(cfg egressapi.Config, n int) []rendition {
	w, h := cfg.Size()
	portrait := h > w
	short := min(w, h)
	out := []rendition{{w, h, videoBitrate(short)}}
	for _, s := range []int{720, 480, 360} {
		if len(out) >= n {
			break
		}
		if s >= short {
			continue
		}
		long := even(s * max(w, h) / short)
		if portrait {
			out = append(out, rendition{s, long, videoBitrate(s)})
		} else {
			out = append(out, rendition{long, s, videoBitrate(s)})
		}
	}
	return out
}

// hlsArgs writes dir/index.m3u8 (master), dir/v<i>/index.m3u8 and segments.
// Variant playlists keep every segment (EVENT type) so index.m3u8 can seek
// back; live.m3u8 is derived from them by the handler with a window.
func hlsArgs(cfg egressapi.Config, fps int, o egressapi.HLSOptions, dir string) []string {
	gop := int(o.SegmentSeconds * float64(fps))
	var a []string
	var streams []string
	if cfg.Mode == egressapi.ModeAudio {
		a = append(a, "-map", "0:a")
		a = append(a, aacArgs...)
		streams = append(streams, "a:0")
	} else {
		rs := renditions(cfg, o.Renditions)
		if len(rs) == 1 {
			a = append(a, "-map", "0:v")
		} else {
			var fc strings.Builder
			fmt.Fprintf(&fc, "[0:v]split=%d", len(rs))
			for i := range rs {
				fmt.Fprintf(&fc, "[s%d]", i)
			}
			for i, r := range rs[1:] {
				fmt.Fprintf(&fc, ";[s%d]scale=%d:%d[r%d]", i+1, r.w, r.h, i+1)
			}
			a = append(a, "-filter_complex", fc.String(), "-map", "[s0]")
			for i := range rs[1:] {
				a = append(a, "-map", fmt.Sprintf("[r%d]", i+1))
			}
		}
		for range rs {
			a = append(a, "-map", "1:a")
		}
		for i, r := range rs {
			a = append(a, x264Args(fmt.Sprint(i), fps, gop, r.kbps)...)
			streams = append(streams, fmt.Sprintf("v:%d,a:%d", i, i))
		}
		a = append(a, "-pix_fmt", "yuv420p")
		a = append(a, aacArgs...)
	}
	return append(a,
		"-f", "hls", "-hls_time", fmt.Sprint(o.SegmentSeconds), "-hls_list_size", "0",
		"-hls_playlist_type", "event", "-hls_flags", "independent_segments+temp_file",
		"-master_pl_name", "index.m3u8", "-var_stream_map", strings.Join(streams, " "),
		"-hls_segment_filename", filepath.Join(dir, "v%v", "seg_%05d.ts"),
		filepath.Join(dir, "v%v", "index.m3u8"))
}
