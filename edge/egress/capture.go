package egress

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"

	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// CaptureOptions choose a thumbnail of a composing job.
type CaptureOptions struct {
	// Width and Height of the image (0: the job's own size). The picture is
	// fitted inside, letterboxed.
	Width, Height int
	// Format is "jpg" (default) or "png".
	Format string
	// At, when set, grabs the picture this many seconds into an HLS
	// stream instead of the live one.
	At *float64
}

// Capture takes a picture of a running composite, RTMP or HLS job, stores
// it (thumbnails/… in the job's storage) and returns the stored file and
// the image bytes.
func (r *Runner) Capture(id string, o CaptureOptions) (egressapi.File, []byte, error) {
	j := r.job(id)
	if j == nil {
		return egressapi.File{}, nil, ErrJobNotFound
	}
	if j.comp == nil || j.comp.audioOnly {
		return egressapi.File{}, nil, ErrNotCapturable
	}
	switch o.Format {
	case "":
		o.Format = "jpg"
	case "jpg", "jpeg", "png":
	default:
		return egressapi.File{}, nil, &egressapi.FieldError{Field: "format", Message: "must be jpg or png"}
	}
	if o.Width < 0 || o.Height < 0 || o.Width > 3840 || o.Height > 3840 {
		return egressapi.File{}, nil, &egressapi.FieldError{Field: "width", Message: "width and height must be between 1 and 3840"}
	}
	if o.Width == 0 {
		o.Width = j.comp.w
	}
	if o.Height == 0 {
		o.Height = j.comp.h
	}
	var pic *yuvFrame
	if o.At != nil {
		if j.hlsDir == "" {
			return egressapi.File{}, nil, &egressapi.FieldError{Field: "time", Message: "only HLS streams can be captured at a time"}
		}
		var err error
		if pic, err = r.grabHLS(j, *o.At); err != nil {
			return egressapi.File{}, nil, err
		}
	} else {
		if j.status().State != egressapi.StateRunning {
			return egressapi.File{}, nil, ErrJobEnded
		}
		pic = j.comp.snapshot()
	}
	img := newYUVFrame(even(o.Width), even(o.Height))
	img.fill(image.Rect(0, 0, img.w, img.h), rgb(0, 0, 0))
	img.blit(fitRect(image.Rect(0, 0, img.w, img.h), pic.w, pic.h), pic)
	var buf bytes.Buffer
	var err error
	ext, ctype := "jpg", "image/jpeg"
	if o.Format == "png" {
		ext, ctype = "png", "image/png"
		err = png.Encode(&buf, img.image())
	} else {
		err = jpeg.Encode(&buf, img.image(), &jpeg.Options{Quality: 85})
	}
	if err != nil {
		return egressapi.File{}, nil, err
	}
	target := j.target
	if target == nil {
		if target, err = storage.Select(r.cfg.Storage, j.spec.AllowedRegions); err != nil {
			return egressapi.File{}, nil, err
		}
	}
	now := r.cfg.Now()
	tmp := filepath.Join(r.cfg.WorkDir, "jobs", fmt.Sprintf("capture-%s-%d.%s", safeName(id), now.UnixNano(), ext))
	if err := os.WriteFile(tmp, buf.Bytes(), 0o640); err != nil {
		return egressapi.File{}, nil, err
	}
	key := storage.JoinKey(j.spec.DirPath, fmt.Sprintf("thumbnails/%s_%d.%s", safeName(id), now.UnixMilli(), ext))
	size, err := target.Put(context.Background(), key, tmp, ctype)
	_ = os.Remove(tmp)
	if err != nil {
		return egressapi.File{}, nil, err
	}
	return egressapi.File{Storage: target.Name(), Region: target.Region(), Key: key, Size: size, Width: img.w, Height: img.h,
		Format: ext, Type: "image", Start: now, End: now}, buf.Bytes(), nil
}

// grabHLS decodes the picture at t seconds of the top HLS rendition.
func (r *Runner) grabHLS(j *job, t float64) (*yuvFrame, error) {
	if t < 0 {
		return nil, &egressapi.FieldError{Field: "time", Message: "must not be negative"}
	}
	w, h := j.comp.w, j.comp.h
	p, err := startProc(procSpec{name: "hls grab", bin: r.cfg.FFmpeg, stdoutPipe: true, args: []string{
		"-hide_banner", "-loglevel", "error", "-nostdin", "-ss", fmt.Sprintf("%.3f", t),
		"-i", filepath.Join(j.hlsDir, "v0", "index.m3u8"), "-frames:v", "1",
		"-vf", fmt.Sprintf("scale=%d:%d", w, h), "-pix_fmt", "yuv420p", "-f", "rawvideo", "pipe:1"}})
	if err != nil {
		return nil, err
	}
	pic := newYUVFrame(w, h)
	_, rerr := io.ReadFull(p.stdout, pic.buf)
	p.stdout.Close()
	if werr := p.wait(r.cfg.StopTimeout); werr != nil {
		return nil, werr
	}
	if rerr != nil {
		return nil, &egressapi.FieldError{Field: "time", Message: "no picture at that time"}
	}
	return pic, nil
}
