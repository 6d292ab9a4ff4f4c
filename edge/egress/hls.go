package egress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// HLS is served by the edge from the job's directory:
//
//	/<path>/index.m3u8          master playlist (ffmpeg's): playback, seekable
//	/<path>/live.m3u8           master playlist of the live window
//	/<path>/v<i>/index.m3u8     variant playlist with every segment (EVENT)
//	/<path>/v<i>/live.m3u8      the last window segments of it
//	/<path>/v<i>/seg_NNNNN.ts   segments
//
// live.m3u8 is derived on each request from index.m3u8, so both lists are
// always consistent and the window is a per-job setting. Paths are
// capabilities (unguessable, chosen by the control plane): players cannot
// attach credentials to every segment request.

type hlsDirs struct {
	mu   sync.RWMutex
	dirs map[string]hlsDir // by path
}

type hlsDir struct {
	dir    string
	window int
	ended  bool // the job is over: a playlist missing now will stay missing
}

func (h *hlsDirs) add(path, dir string, window int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dirs == nil {
		h.dirs = map[string]hlsDir{}
	}
	h.dirs[path] = hlsDir{dir: dir, window: window}
}

// end marks a stream whose job is over (stopped or failed); its files stay
// served until the job is forgotten.
func (h *hlsDirs) end(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d, ok := h.dirs[path]; ok {
		d.ended = true
		h.dirs[path] = d
	}
}

func (h *hlsDirs) remove(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.dirs, path)
}

func (h *hlsDirs) get(path string) (hlsDir, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	d, ok := h.dirs[path]
	return d, ok
}

var (
	reVariant = regexp.MustCompile(`^v[0-9]{1,2}$`)
	reSegment = regexp.MustCompile(`^seg_[0-9]{5,9}\.ts$`)
)

func (h *hlsDirs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		hlsError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		hlsError(w, http.StatusNotFound, "not found")
		return
	}
	d, ok := h.get(parts[0])
	if !ok {
		hlsError(w, http.StatusNotFound, "no such stream")
		return
	}
	name := parts[len(parts)-1]
	variant := ""
	if len(parts) == 3 {
		variant = parts[1]
		if !reVariant.MatchString(variant) {
			hlsError(w, http.StatusNotFound, "not found")
			return
		}
	}
	switch {
	case name == "index.m3u8":
		h.serveFile(w, r, filepath.Join(d.dir, variant, name), "application/vnd.apple.mpegurl", true, d.noPlaylist())
	case name == "live.m3u8":
		src, err := os.ReadFile(filepath.Join(d.dir, variant, "index.m3u8"))
		if err != nil {
			hlsError(w, http.StatusNotFound, d.noPlaylist())
			return
		}
		var out []byte
		if variant == "" {
			out = bytes.ReplaceAll(src, []byte("/index.m3u8"), []byte("/live.m3u8"))
		} else {
			out = liveWindow(src, d.window)
		}
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(out)
		}
	case variant != "" && reSegment.MatchString(name):
		h.serveFile(w, r, filepath.Join(d.dir, variant, name), "video/mp2t", false, "not found")
	default:
		hlsError(w, http.StatusNotFound, "not found")
	}
}

// noPlaylist says why a playlist is missing: ffmpeg writes the master
// playlist once every rendition has its first segment.
func (d hlsDir) noPlaylist() string {
	if d.ended {
		return "stream ended before its first segment"
	}
	return "stream not started yet"
}

// serveFile serves p, or a 404 saying missing.
func (h *hlsDirs) serveFile(w http.ResponseWriter, r *http.Request, p, ctype string, playlist bool, missing string) {
	f, err := os.Open(p)
	if err != nil {
		hlsError(w, http.StatusNotFound, missing)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		hlsError(w, http.StatusNotFound, "not found")
		return
	}
	w.Header().Set("Content-Type", ctype)
	if playlist {
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=3600")
	}
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func hlsError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "message": msg})
}

// liveWindow keeps the last n segments of a media playlist, with the
// media sequence number advanced by the segments left out and without the
// EVENT type (the window slides).
func liveWindow(src []byte, n int) []byte {
	var header []string
	var segs [][]string
	var cur []string
	ended := false
	seq := 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			seq, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(l, "#EXT-X-PLAYLIST-TYPE"):
		case l == "#EXT-X-ENDLIST":
			ended = true
		case strings.HasPrefix(l, "#EXTINF") || strings.HasPrefix(l, "#EXT-X-DISCONTINUITY") || strings.HasPrefix(l, "#EXT-X-PROGRAM-DATE-TIME"):
			cur = append(cur, l)
		case !strings.HasPrefix(l, "#"):
			segs = append(segs, append(cur, l))
			cur = nil
		case len(segs) == 0 && cur == nil:
			header = append(header, l)
		}
	}
	drop := max(len(segs)-n, 0)
	var b bytes.Buffer
	for _, l := range header {
		b.WriteString(l)
		b.WriteByte('\n')
		if strings.HasPrefix(l, "#EXT-X-TARGETDURATION") {
			b.WriteString("#EXT-X-MEDIA-SEQUENCE:" + strconv.Itoa(seq+drop) + "\n")
		}
	}
	for _, s := range segs[drop:] {
		for _, l := range s {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	if ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.Bytes()
}

// hlsPlayable reports whether the master playlist exists and every
// variant's playlist lists a segment with data in it. An ffmpeg stopped
// before its first packet still lists the segment it opened, empty: that
// stream has nothing to play, and its recording nothing to remux.
func hlsPlayable(dir string, variants int) bool {
	if _, err := os.Stat(filepath.Join(dir, "index.m3u8")); err != nil {
		return false
	}
	for i := 0; i < variants; i++ {
		vdir := filepath.Join(dir, "v"+strconv.Itoa(i))
		b, err := os.ReadFile(filepath.Join(vdir, "index.m3u8"))
		if err != nil || !listsMedia(vdir, b) {
			return false
		}
	}
	return true
}

// listsMedia reports whether a media playlist in dir lists a segment file
// that is not empty.
func listsMedia(dir string, playlist []byte) bool {
	for _, l := range strings.Split(string(playlist), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, filepath.Base(l))); err == nil && fi.Size() > 0 {
			return true
		}
	}
	return false
}
