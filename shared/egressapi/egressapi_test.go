package egressapi

import (
	"errors"
	"testing"
)

func TestConfigDefaultsAndSizes(t *testing.T) {
	c, err := Config{}.Normalize(KindComposite, "config")
	if err != nil {
		t.Fatal(err)
	}
	if c.Layout.Type != LayoutGrid || c.Layout.Priority != PrioritySpeaker || c.Layout.GridSize != 4 || c.Theme != ThemeDefault ||
		c.Mode != ModeVideoAndAudio || c.Quality != QualityMed || c.Orientation != OrientationLandscape {
		t.Fatalf("defaults: %+v", c)
	}
	h, _ := Config{}.Normalize(KindHLS, "config")
	if h.Layout.GridSize != 25 {
		t.Fatalf("HLS grid default %d, want 25", h.Layout.GridSize)
	}
	for _, tc := range []struct {
		c    Config
		w, h int
	}{
		{Config{Quality: "low"}, 854, 480},
		{Config{Quality: "HIGH"}, 1920, 1080},
		{Config{Quality: "ultra"}, 1920, 1080},
		{Config{Quality: "med", Orientation: "portrait"}, 720, 1280},
	} {
		n, err := tc.c.Normalize(KindComposite, "config")
		if err != nil {
			t.Fatal(err)
		}
		if w, h := n.Size(); w != tc.w || h != tc.h {
			t.Errorf("%+v: %dx%d, want %dx%d", tc.c, w, h, tc.w, tc.h)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		c     Config
		kind  Kind
		field string
	}{
		{Config{Layout: Layout{Type: "tiles"}}, KindComposite, "config.layout.type"},
		{Config{Layout: Layout{Priority: "LOUDEST"}}, KindComposite, "config.layout.priority"},
		{Config{Layout: Layout{GridSize: 5}}, KindRTMP, "config.layout.gridSize"},
		{Config{Layout: Layout{GridSize: 26}}, KindHLS, "config.layout.gridSize"},
		{Config{Layout: Layout{GridSize: -1}}, KindHLS, "config.layout.gridSize"},
		{Config{Theme: "neon"}, KindComposite, "config.theme"},
		{Config{Mode: "video"}, KindComposite, "config.mode"},
		{Config{Quality: "best"}, KindComposite, "config.quality"},
		{Config{Orientation: "square"}, KindComposite, "config.orientation"},
	} {
		_, err := tc.c.Normalize(tc.kind, "config")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", tc.c, err, tc.field)
		}
	}
	if _, err := (Config{Layout: Layout{GridSize: 25}}).Normalize(KindHLS, "config"); err != nil {
		t.Errorf("gridSize 25 for HLS: %v", err)
	}
}

func TestSpecNormalize(t *testing.T) {
	s, err := Spec{ID: "h", Kind: KindHLS, RoomID: "r"}.Normalize()
	if err != nil || s.HLS.SegmentSeconds != 2 || s.HLS.WindowSegments != 6 || s.HLS.Renditions != 1 || s.HLS.Path != "h" {
		t.Fatalf("HLS defaults: %+v %v", s.HLS, err)
	}
	for _, tc := range []struct {
		s     Spec
		field string
	}{
		{Spec{Kind: KindComposite, RoomID: "r"}, "id"},
		{Spec{ID: "a/b", Kind: KindComposite, RoomID: "r"}, "id"},
		{Spec{ID: "x", Kind: KindComposite}, "roomId"},
		{Spec{ID: "x", Kind: "video"}, "kind"},
		{Spec{ID: "x", Kind: KindParticipant, RoomID: "r"}, "participantId"},
		{Spec{ID: "x", Kind: KindParticipant, RoomID: "r", ParticipantID: "p", FileFormat: "avi"}, "fileFormat"},
		{Spec{ID: "x", Kind: KindRTMP, RoomID: "r", Outputs: []RTMPOutput{{URL: "rtmp://h/app", StreamKey: "a b"}}}, "outputs[0].streamKey"},
		{Spec{ID: "x", Kind: KindMerge, RoomID: "r"}, "sessionId"},
		{Spec{ID: "x", Kind: KindMerge, SessionID: "s", Channel1: []MergeInput{{ParticipantID: "p"}}}, "channel1[0].recordingId"},
		{Spec{ID: "x", Kind: KindHLS, RoomID: "r", HLS: HLSOptions{WindowSegments: 1}}, "hls.windowSegments"},
		{Spec{ID: "x", Kind: KindHLS, RoomID: "r", HLS: HLSOptions{Path: "../etc"}}, "hls.path"},
	} {
		_, err := tc.s.Normalize()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", tc.s, err, tc.field)
		}
	}
	if got := (RTMPOutput{URL: "rtmp://h/live/", StreamKey: "k"}).Target(); got != "rtmp://h/live/k" {
		t.Errorf("Target = %q", got)
	}
}

// TestKindNoun: the API's and the state's messages name a job by its kind
// ("livestream \"…\" not found"), the same words everywhere.
func TestKindNoun(t *testing.T) {
	for k, want := range map[Kind]string{
		KindComposite:   "recording",
		KindParticipant: "participant recording",
		KindTrack:       "track recording",
		KindMerge:       "merge",
		KindRTMP:        "livestream",
		KindHLS:         "HLS stream",
	} {
		if got := k.Noun(); got != want {
			t.Errorf("%s.Noun() = %q, want %q", k, got, want)
		}
	}
}
