package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// TestEgressRecordingToS3: an edge whose preferred storage is an
// S3-compatible bucket (an in-process S3 server) uploads the recording
// there, and the fileUrl the control plane signs (it has no S3
// credentials) is answered by the edge with a redirect to a presigned
// object URL that serves the file.
func TestEgressRecordingToS3(t *testing.T) {
	egresstest.NeedFFmpeg(t)
	fake := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(fake.Close)
	fu, _ := url.Parse(fake.URL)
	bucket, err := storage.NewS3(storage.S3Config{Name: "s3-local", Region: "local", Endpoint: fu.Host, Bucket: "recordings",
		AccessKey: "AKIAEXAMPLE", SecretKey: "secret", BucketRegion: "us-east-1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := startEgressStack(t, bucket)
	video, audio := egresstest.Media(t)
	room := "room-s3"
	egresstest.Publish(t, s.edge.SFU(), room, "alice", video, audio)

	s.start(t, egressapi.Spec{ID: "rec-s3", Kind: egressapi.KindComposite, RoomID: room, SessionID: "sess-s3"})
	waitUntil(t, "2 s of recording", 60*time.Second, func() bool {
		st, ok := s.edge.Egress().Status("rec-s3")
		return ok && st.Duration >= 2
	})
	if code, body, _ := s.call(t, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: "rec-s3"}); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	var fin egressapi.Status
	waitUntil(t, "control to receive the recording's final status", 120*time.Second, func() bool {
		var ok bool
		fin, ok = s.tap.final("rec-s3")
		return ok
	})
	if fin.State != egressapi.StateStopped || len(fin.Files) != 1 || fin.Files[0].Storage != "s3-local" {
		t.Fatalf("final status %+v, want one file in s3-local", fin)
	}
	f := fin.Files[0]
	if size, err := bucket.Size(context.Background(), f.Key); err != nil || size != f.Size {
		t.Fatalf("object %s in the bucket: %d bytes, %v; status says %d", f.Key, size, err, f.Size)
	}

	// fileUrl → 302 to the bucket, presigned.
	u := s.signedURL(t, f)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Host != fu.Host || loc.Query().Get("X-Amz-Signature") == "" {
		t.Fatalf("fileUrl of an S3 file answered %d Location %q; want 302 to a presigned URL on %s", resp.StatusCode, resp.Header.Get("Location"), fu.Host)
	}
	// A player follows it and gets the recording.
	p := egresstest.FFprobe(t, u)
	if p.Codec("video") != "h264" || p.Codec("audio") != "aac" {
		t.Fatalf("recording streams %+v", p.Streams)
	}
	// Tampered or unsigned: refused, no redirect.
	for _, bad := range []string{strings.Replace(u, "sig=", "sig=A", 1), strings.Split(u, "?")[0]} {
		resp, err := noFollow.Get(bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s answered %d, want 401/403", bad, resp.StatusCode)
		}
		if resp.Header.Get("Location") != "" {
			t.Fatalf("%s redirected to %s", bad, resp.Header.Get("Location"))
		}
	}
}
