package egress

import (
	"image"
	"math"
	"sort"

	"github.com/meridian-video/meridian/shared/egressapi"
)

// The layout is recomputed whenever the room changes (joins, leaves,
// publishes, mutes, a new active speaker) and is a pure function of the
// composition config, the canvas size, the room and the current speaker:
//
//   - GRID: equal tiles, as square a grid as the canvas allows, at most
//     gridSize of them (screen shares first, then participants in join
//     order; with priority SPEAKER the speaker is never the one left out);
//   - SIDEBAR: a main tile (3/4 of the width, or of the height in
//     portrait) and the others stacked beside it;
//   - SPOTLIGHT: the main tile alone.
//
// The main tile is a screen share if there is one, else the active (or
// last active) speaker with priority SPEAKER, else the first to join.
// Participants without video, or with it muted, keep their tile with a
// placeholder.

// entry is something that can get a tile: a participant's camera (or
// placeholder) or a screen share.
type entry struct {
	participantID string
	name          string
	trackID       string // video track, "" for none
	muted         bool
	screen        bool
	order         int // join order
}

func (e entry) key() string {
	if e.screen {
		return e.participantID + "/screen"
	}
	return e.participantID
}

type tile struct {
	entry
	rect     image.Rectangle
	main     bool
	speaking bool
}

const tileGap = 4

func layoutTiles(cfg egressapi.Config, w, h int, entries []entry, speaker string) []tile {
	if len(entries) == 0 {
		return nil
	}
	es := append([]entry(nil), entries...)
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].screen != es[j].screen {
			return es[i].screen
		}
		return es[i].order < es[j].order
	})
	max := cfg.Layout.GridSize
	if max <= 0 {
		max = len(es)
	}
	speakerIdx := -1
	if cfg.Layout.Priority == egressapi.PrioritySpeaker && speaker != "" {
		for i, e := range es {
			if !e.screen && e.participantID == speaker {
				speakerIdx = i
				break
			}
		}
	}
	canvas := image.Rect(0, 0, w, h)
	portrait := h > w
	if cfg.Layout.Type == egressapi.LayoutGrid {
		if len(es) > max {
			if speakerIdx >= max {
				es[max-1], es[speakerIdx] = es[speakerIdx], es[max-1]
			}
			es = es[:max]
		}
		rects := gridRects(canvas, len(es), portrait)
		out := make([]tile, len(es))
		for i, e := range es {
			out[i] = tile{entry: e, rect: rects[i], speaking: e.participantID == speaker && !e.screen}
		}
		return out
	}
	// SIDEBAR and SPOTLIGHT: pick the main entry.
	mainIdx := 0
	if !es[0].screen && speakerIdx >= 0 {
		mainIdx = speakerIdx
	}
	main := es[mainIdx]
	rest := append(append([]entry(nil), es[:mainIdx]...), es[mainIdx+1:]...)
	if cfg.Layout.Type == egressapi.LayoutSpotlight || len(rest) == 0 || max == 1 {
		return []tile{{entry: main, rect: canvas, main: true, speaking: main.participantID == speaker && !main.screen}}
	}
	if len(rest) > max-1 {
		rest = rest[:max-1]
	}
	var mainRect, side image.Rectangle
	if portrait {
		split := even(h * 3 / 4)
		mainRect, side = image.Rect(0, 0, w, split), image.Rect(0, split+tileGap, w, h)
	} else {
		split := even(w * 3 / 4)
		mainRect, side = image.Rect(0, 0, split, h), image.Rect(split+tileGap, 0, w, h)
	}
	out := []tile{{entry: main, rect: mainRect, main: true, speaking: main.participantID == speaker && !main.screen}}
	n := len(rest)
	for i, e := range rest {
		var r image.Rectangle
		if portrait {
			cw := (side.Dx() - (n-1)*tileGap) / n
			x := side.Min.X + i*(cw+tileGap)
			r = image.Rect(x, side.Min.Y, x+cw, side.Max.Y)
		} else {
			ch := (side.Dy() - (n-1)*tileGap) / n
			y := side.Min.Y + i*(ch+tileGap)
			r = image.Rect(side.Min.X, y, side.Max.X, y+ch)
		}
		out = append(out, tile{entry: e, rect: evenRect(r), speaking: e.participantID == speaker && !e.screen})
	}
	return out
}

// gridRects splits r into n equal cells, rows filled first, the last row
// centred.
func gridRects(r image.Rectangle, n int, portrait bool) []image.Rectangle {
	if n == 1 {
		return []image.Rectangle{r}
	}
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	if portrait {
		rows, cols = cols, (n+cols-1)/cols
	}
	cw := (r.Dx() - (cols-1)*tileGap) / cols
	ch := (r.Dy() - (rows-1)*tileGap) / rows
	out := make([]image.Rectangle, 0, n)
	for i := 0; i < n; i++ {
		row, col := i/cols, i%cols
		inRow := cols
		if row == rows-1 && n%cols != 0 {
			inRow = n % cols
		}
		offset := (r.Dx() - (inRow*cw + (inRow-1)*tileGap)) / 2
		x := r.Min.X + offset + col*(cw+tileGap)
		y := r.Min.Y + row*(ch+tileGap)
		out = append(out, evenRect(image.Rect(x, y, x+cw, y+ch)))
	}
	return out
}
