package egress

import (
	"image"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
)

func norm(t *testing.T, c egressapi.Config, k egressapi.Kind) egressapi.Config {
	t.Helper()
	c, err := c.Normalize(k, "config")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLayoutTiles(t *testing.T) {
	ents := func(n int) []entry {
		var es []entry
		for i := 0; i < n; i++ {
			es = append(es, entry{participantID: string(rune('a' + i)), trackID: "v", order: i})
		}
		return es
	}
	grid := norm(t, egressapi.Config{}, egressapi.KindComposite)
	// Two people side by side, four in a 2×2 grid, all inside the canvas,
	// none overlapping.
	for n, want := range map[int][]image.Rectangle{
		1: {image.Rect(0, 0, 1280, 720)},
		2: {image.Rect(0, 0, 638, 720), image.Rect(642, 0, 1280, 720)},
		4: {image.Rect(0, 0, 638, 358), image.Rect(642, 0, 1280, 358), image.Rect(0, 362, 638, 720), image.Rect(642, 362, 1280, 720)},
	} {
		ts := layoutTiles(grid, 1280, 720, ents(n), "")
		if len(ts) != n {
			t.Fatalf("%d people: %d tiles", n, len(ts))
		}
		for i, tl := range ts {
			if tl.rect != want[i] {
				t.Errorf("%d people, tile %d: %v, want %v", n, i, tl.rect, want[i])
			}
		}
	}
	// Three: the last row is centred.
	ts := layoutTiles(grid, 1280, 720, ents(3), "")
	if c := ts[2].rect.Min.X + ts[2].rect.Dx()/2; c < 630 || c > 650 {
		t.Fatalf("third tile %v is not centred", ts[2].rect)
	}
	// gridSize caps the tiles; the speaker is never the one left out.
	small := norm(t, egressapi.Config{Layout: egressapi.Layout{GridSize: 2}}, egressapi.KindComposite)
	ts = layoutTiles(small, 1280, 720, ents(4), "d")
	if len(ts) != 2 || ts[1].participantID != "d" || !ts[1].speaking {
		t.Fatalf("grid of 2 with speaker d: %s", describe(ts))
	}
	// SIDEBAR: the speaker takes the main tile, 3/4 of the width.
	side := norm(t, egressapi.Config{Layout: egressapi.Layout{Type: "SIDEBAR"}}, egressapi.KindComposite)
	ts = layoutTiles(side, 1280, 720, ents(3), "c")
	if !ts[0].main || ts[0].participantID != "c" || ts[0].rect != image.Rect(0, 0, 960, 720) || len(ts) != 3 {
		t.Fatalf("sidebar: %s", describe(ts))
	}
	// With priority PIN the first to join keeps the main tile.
	pin := norm(t, egressapi.Config{Layout: egressapi.Layout{Type: "SIDEBAR", Priority: "PIN"}}, egressapi.KindComposite)
	if ts = layoutTiles(pin, 1280, 720, ents(3), "c"); ts[0].participantID != "a" {
		t.Fatalf("sidebar, priority PIN: %s", describe(ts))
	}
	// A screen share takes the main tile over the speaker.
	es := append(ents(2), entry{participantID: "b", trackID: "s", screen: true, order: 1})
	if ts = layoutTiles(side, 1280, 720, es, "a"); !ts[0].screen {
		t.Fatalf("screen share not main: %s", describe(ts))
	}
	// SPOTLIGHT: the main tile alone.
	spot := norm(t, egressapi.Config{Layout: egressapi.Layout{Type: "SPOTLIGHT"}}, egressapi.KindComposite)
	if ts = layoutTiles(spot, 1280, 720, ents(3), "b"); len(ts) != 1 || ts[0].participantID != "b" || ts[0].rect != image.Rect(0, 0, 1280, 720) {
		t.Fatalf("spotlight: %s", describe(ts))
	}
	// Portrait stacks two people.
	port := norm(t, egressapi.Config{Orientation: "portrait"}, egressapi.KindComposite)
	w, h := port.Size()
	if ts = layoutTiles(port, w, h, ents(2), ""); ts[0].rect.Dx() != 720 || ts[1].rect.Min.Y <= ts[0].rect.Max.Y-1 {
		t.Fatalf("portrait: %s", describe(ts))
	}
}

func TestLiveWindow(t *testing.T) {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for i := 0; i < 7; i++ {
		b.WriteString("#EXTINF:2.000000,\nseg_0000" + string(rune('0'+i)) + ".ts\n")
	}
	got := string(liveWindow([]byte(b.String()), 3))
	want := "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-INDEPENDENT-SEGMENTS\n" +
		"#EXTINF:2.000000,\nseg_00004.ts\n#EXTINF:2.000000,\nseg_00005.ts\n#EXTINF:2.000000,\nseg_00006.ts\n"
	if got != want {
		t.Fatalf("live window:\n%s\nwant:\n%s", got, want)
	}
	short := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n"
	if got := string(liveWindow([]byte(short), 3)); !strings.Contains(got, "MEDIA-SEQUENCE:0") || !strings.HasSuffix(got, "seg_00000.ts\n#EXT-X-ENDLIST\n") {
		t.Fatalf("short playlist: %s", got)
	}
}

func TestScalePlane(t *testing.T) {
	src := newYUVFrame(4, 4)
	y, _, _ := src.planes()
	for i := range y {
		y[i] = byte(i * 10)
	}
	dst := newYUVFrame(2, 2)
	dst.blit(image.Rect(0, 0, 2, 2), src)
	dy, _, _ := dst.planes()
	// 2×2 box averages.
	want := []byte{(0 + 10 + 40 + 50 + 2) / 4, (20 + 30 + 60 + 70 + 2) / 4, (80 + 90 + 120 + 130 + 2) / 4, (100 + 110 + 140 + 150 + 2) / 4}
	for i := range want {
		if dy[i] != want[i] {
			t.Fatalf("halving: %v, want %v", dy, want)
		}
	}
	// Bilinear upscale keeps a flat picture flat and corners exact.
	flat := newYUVFrame(6, 4)
	flat.fill(image.Rect(0, 0, 6, 4), yuvColor{100, 50, 200})
	big := newYUVFrame(20, 10)
	big.blit(image.Rect(0, 0, 20, 10), flat)
	by, bu, bv := big.planes()
	for i := range by {
		if by[i] != 100 {
			t.Fatalf("flat picture upscaled to %d at %d", by[i], i)
		}
	}
	if bu[0] != 50 || bv[len(bv)-1] != 200 {
		t.Fatalf("chroma: %d %d", bu[0], bv[len(bv)-1])
	}
	if r := fitRect(image.Rect(0, 0, 638, 720), 16, 9); r != image.Rect(0, 180, 638, 538) {
		t.Fatalf("fitRect: %v", r)
	}
}

func TestOpusDuration(t *testing.T) {
	for _, tc := range []struct {
		pkt  []byte
		want time.Duration
	}{
		{[]byte{0x48}, 20 * time.Millisecond},           // SILK WB 20 ms
		{[]byte{0xfc}, 20 * time.Millisecond},           // CELT FB 20 ms
		{[]byte{0xfd}, 40 * time.Millisecond},           // two frames
		{[]byte{0xf3, 0x03}, 3 * 10 * time.Millisecond}, // code 3: three 10 ms CELT frames
		{[]byte{0x80}, 2500 * time.Microsecond},         // CELT NB 2.5 ms
		{[]byte{0x18}, 60 * time.Millisecond},           // SILK NB 60 ms
	} {
		if got := opusDuration(tc.pkt); got != tc.want {
			t.Errorf("opusDuration(%x) = %v, want %v", tc.pkt, got, tc.want)
		}
	}
}
