package egress

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// Bad requests are refused with an error naming the field, and no job is
// kept; so are jobs for rooms, participants or tracks that are not there,
// and duplicate ids. Stopping unknown or ended jobs says so.
func TestStartRefusals(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	publish(t, s, "room-e", "alice", egresstest.Options{Audio: mediaFile(t, "440.ogg")})
	field := func(spec egressapi.Spec, want string) {
		t.Helper()
		_, err := tr.Start(spec)
		var fe *egressapi.FieldError
		if !errors.As(err, &fe) || fe.Field != want {
			t.Fatalf("Start(%+v) = %v, want an error naming %s", spec, err, want)
		}
	}
	comp := func(c egressapi.Config) egressapi.Spec {
		return egressapi.Spec{ID: "x", Kind: egressapi.KindComposite, RoomID: "room-e", Config: c}
	}
	field(comp(egressapi.Config{Layout: egressapi.Layout{Type: "MOSAIC"}}), "config.layout.type")
	field(comp(egressapi.Config{Layout: egressapi.Layout{GridSize: 5}}), "config.layout.gridSize")
	field(comp(egressapi.Config{Orientation: "diagonal"}), "config.orientation")
	field(comp(egressapi.Config{Quality: "4k"}), "config.quality")
	field(comp(egressapi.Config{Mode: "video"}), "config.mode")
	field(comp(egressapi.Config{Theme: "PINK"}), "config.theme")
	field(egressapi.Spec{ID: "x", Kind: egressapi.KindRTMP, RoomID: "room-e"}, "outputs")
	field(egressapi.Spec{ID: "x", Kind: egressapi.KindRTMP, RoomID: "room-e", Outputs: []egressapi.RTMPOutput{{URL: "http://example.com/live"}}}, "outputs[0].url")
	field(egressapi.Spec{ID: "x", Kind: egressapi.KindTrack, RoomID: "room-e", ParticipantID: "alice", TrackKind: "smell"}, "kind")
	field(egressapi.Spec{ID: "x", Kind: egressapi.KindTrack, RoomID: "room-e", ParticipantID: "alice", TrackKind: "video", FileFormat: "mp3"}, "fileFormat")
	field(egressapi.Spec{ID: "x", Kind: egressapi.KindHLS, RoomID: "room-e", HLS: egressapi.HLSOptions{Renditions: 4}}, "hls.renditions")
	field(egressapi.Spec{ID: "../x", Kind: egressapi.KindComposite, RoomID: "room-e"}, "id")

	for _, tc := range []struct {
		spec egressapi.Spec
		want error
	}{
		{egressapi.Spec{ID: "x", Kind: egressapi.KindComposite, RoomID: "no-such-room"}, ErrRoomNotFound},
		{egressapi.Spec{ID: "x", Kind: egressapi.KindParticipant, RoomID: "room-e", ParticipantID: "bob"}, ErrParticipantAbsent},
		{egressapi.Spec{ID: "x", Kind: egressapi.KindTrack, RoomID: "room-e", ParticipantID: "alice", TrackKind: "video"}, ErrTrackAbsent},
		{egressapi.Spec{ID: "x", Kind: egressapi.KindParticipant, RoomID: "room-e", ParticipantID: "alice", AllowedRegions: []string{"eu-west"}}, storage.ErrNoStorageForRegion},
	} {
		if _, err := tr.Start(tc.spec); !errors.Is(err, tc.want) {
			t.Fatalf("Start(%+v) = %v, want %v", tc.spec, err, tc.want)
		}
	}
	if got := tr.List(); len(got) != 0 {
		t.Fatalf("refused starts left jobs behind: %+v", got)
	}
	entries, _ := os.ReadDir(filepath.Join(tr.cfg.WorkDir, "jobs"))
	if len(entries) != 0 {
		t.Fatalf("refused starts left work directories: %v", entries)
	}

	spec := egressapi.Spec{ID: "a1", Kind: egressapi.KindTrack, RoomID: "room-e", ParticipantID: "alice", TrackKind: "audio"}
	if _, err := tr.Start(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Start(spec); !errors.Is(err, ErrJobExists) {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := tr.Stop("nope"); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("stop unknown: %v", err)
	}
	time.Sleep(time.Second)
	tr.stopAndWait(t, "a1")
	if _, err := tr.Stop("a1"); !errors.Is(err, ErrJobEnded) {
		t.Fatalf("stop ended: %v", err)
	}
	if _, _, err := tr.Capture("a1", CaptureOptions{}); !errors.Is(err, ErrNotCapturable) {
		t.Fatalf("capture of a track recording: %v", err)
	}
}

// A room pinned to a region stores its files only in storage tagged for
// it: here an S3 bucket (in-process gofakes3) for eu-west next to the
// default local directory.
func TestPinnedRoomStoresInItsRegion(t *testing.T) {
	s := startSFU(t)
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewServer(faker.Server())
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	bucket, err := storage.NewS3(storage.S3Config{Name: "s3-eu", Region: "eu-west", Endpoint: u.Host, Bucket: "meridian",
		AccessKey: "key", SecretKey: "secret", BucketRegion: "us-east-1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	var tr *testRunner
	tr = newRunner(t, s, func(c *Config) { c.Storage = append(c.Storage, bucket) })
	publish(t, s, "room-eu", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	st, err := tr.Start(egressapi.Spec{ID: "eu-1", Kind: egressapi.KindParticipant, RoomID: "room-eu", SessionID: "s",
		ParticipantID: "alice", AllowedRegions: []string{"eu-west"}, DirPath: "customer/dir"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Storage != "s3-eu" || st.Region != "eu-west" {
		t.Fatalf("storage chosen: %+v", st)
	}
	time.Sleep(2 * time.Second)
	st = tr.stopAndWait(t, "eu-1")
	if st.State != egressapi.StateStopped || len(st.Files) != 1 {
		t.Fatalf("status %+v", st)
	}
	f := st.Files[0]
	if f.Storage != "s3-eu" || f.Region != "eu-west" || !strings.HasPrefix(f.Key, "customer/dir/individual-recordings/s/alice/") {
		t.Fatalf("file %+v", f)
	}
	if size, err := bucket.Size(context.Background(), f.Key); err != nil || size != f.Size {
		t.Fatalf("object in the bucket: %d %v, status says %d", size, err, f.Size)
	}
	if _, err := tr.local.Size(context.Background(), f.Key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the file also landed in the local (unpinned) storage: %v", err)
	}
	// What was uploaded is the recording.
	local := filepath.Join(t.TempDir(), "back.webm")
	if err := bucket.Get(context.Background(), f.Key, local); err != nil {
		t.Fatal(err)
	}
	if c := egresstest.FFprobe(t, local).Codecs(); c["video"] != "vp8" || c["audio"] != "opus" {
		t.Fatalf("uploaded file codecs %v", c)
	}
}
