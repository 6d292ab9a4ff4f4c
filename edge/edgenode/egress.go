package edgenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/meridian-video/meridian/edge/egress"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/storage"
)

// EgressConfig runs recordings, RTMP out and HLS on the edge
// (docs/egress.md).
type EgressConfig struct {
	// WorkDir holds jobs in progress and live HLS; empty disables egress
	// (its routes answer 503).
	WorkDir string
	// Storage lists the targets in order of preference; local targets are
	// also served at edgeapi.EgressFilesPrefix with signed URLs.
	Storage []storage.Target
	// Configure adjusts the runner's configuration (binaries, timings).
	Configure func(*egress.Config)
}

// startEgress builds the runner. Without ffmpeg the edge still serves
// meetings: egress calls answer 503 with the reason, so the control plane
// can place the job elsewhere or fail it with a clear error.
func (n *Node) startEgress() {
	ec := n.cfg.Egress
	if ec.WorkDir == "" {
		n.egressOff = "egress is not configured on this edge"
		return
	}
	cfg := egress.DefaultConfig()
	cfg.Media = egress.FromSFU(n.sfu)
	cfg.Storage = ec.Storage
	cfg.WorkDir = ec.WorkDir
	cfg.Logger = n.log
	if n.cfg.Clock != nil {
		cfg.Now = n.cfg.Clock // the machine's clock, for the media's timing
	}
	rooms := &roomEgress{jobs: map[string]egressJob{}, recordsMP4: map[string]bool{}}
	n.egRooms = rooms
	cfg.OnStatus = func(st egressapi.Status) {
		n.reportEgress(st)
		rooms.update(n, st)
		n.holdForJob(st)
	}
	// A room with participants on other edges is not over because nobody
	// is left here: the cascade leg may be coming back.
	cfg.OccupiedElsewhere = func(roomID string) bool { return n.casc != nil && len(n.casc.Peers(roomID)) > 0 }
	if ec.Configure != nil {
		ec.Configure(&cfg)
	}
	r, err := egress.New(cfg)
	if err != nil {
		n.egressOff = "egress is unavailable on this edge: " + err.Error()
		n.log.Warn("egress disabled", "err", err)
		return
	}
	n.egress = r
	if n.cfg.Registry != nil {
		if err := n.cfg.Registry.Register(r.Collector()); err != nil {
			n.log.Warn("egress metrics not registered", "err", err)
		}
	}
	for _, t := range ec.Storage {
		if l, ok := t.(*storage.Local); ok {
			n.localFiles = append(n.localFiles, l)
		}
	}
}

// Egress exposes the runner (nil when egress is off).
func (n *Node) Egress() *egress.Runner { return n.egress }

// reportEgress is the runner's OnStatus: every change joins the agent's
// ordered, retried event batch. It only enqueues.
func (n *Node) reportEgress(st egressapi.Status) {
	n.agent.ReportEgress(st)
}

// egressHold is the cascade hold key of a job.
func egressHold(jobID string) string { return "egress/" + jobID }

// capturesRoom: jobs of these kinds read the room's media while they run.
func capturesRoom(spec egressapi.Spec) bool {
	return spec.RoomID != "" && spec.Kind != egressapi.KindMerge
}

// holdForJob keeps the cascade pulling the room's remote media while a
// job captures it, and lets it go once the job stops capturing (stopping:
// it only finishes its files). Fed by the runner's OnStatus goroutine.
func (n *Node) holdForJob(st egressapi.Status) {
	if n.casc == nil || st.RoomID == "" || st.Kind == egressapi.KindMerge {
		return
	}
	if st.State == egressapi.StateStarting || st.State == egressapi.StateRunning {
		n.casc.Hold(st.RoomID, egressHold(st.ID))
	} else {
		n.casc.Release(st.RoomID, egressHold(st.ID))
	}
}

// egressPrewarm bounds how long a job start waits for the room's legs.
const egressPrewarm = 3 * time.Second

// prepareRoomMedia makes the room's media from every edge present here
// before a job that captures it starts: the job holds the cascade (the
// home edge records the room even with nobody local), this edge learns
// the room's peers if it does not know them (joining the placement if the
// control plane sent the job to an edge no longer in it), and the legs'
// welcomes are awaited so the other edges' participants are members of
// the local room when the job checks for them. Bounded; on failure the
// job's own checks answer.
func (n *Node) prepareRoomMedia(spec egressapi.Spec) {
	n.casc.Hold(spec.RoomID, egressHold(spec.ID))
	if !n.casc.Member(spec.RoomID) {
		ctx, cancel := context.WithTimeout(n.bgCtx, egressPrewarm)
		rp, err := n.agent.Attach(ctx, spec.RoomID, true)
		cancel()
		if err != nil {
			n.log.Warn("egress: could not learn the room's other edges", "room", spec.RoomID, "job", spec.ID, "err", err)
			return
		}
		if rp.Member {
			n.casc.SetPeers(rp)
		}
	}
	n.casc.Prewarm(spec.RoomID, true, egressPrewarm)
}

// roomEgress follows which rooms have jobs capturing them here, so the
// rooms' participants can be shown that they are recorded or live
// (signalling's egress-state). Fed by the runner's one OnStatus goroutine.
type roomEgress struct {
	mu   sync.Mutex
	jobs map[string]egressJob // capturing jobs by id
	// recordsMP4: HLS jobs started with recording enabled (they also
	// store the meeting as an MP4), noted at start: statuses do not say.
	recordsMP4 map[string]bool
}

type egressJob struct {
	room    string
	kind    egressapi.Kind
	records bool // an HLS job that also records
}

// noteStart remembers what a job's status does not carry, before it starts.
func (re *roomEgress) noteStart(spec egressapi.Spec) {
	if spec.Kind == egressapi.KindHLS && spec.HLS.Record {
		re.mu.Lock()
		re.recordsMP4[spec.ID] = true
		re.mu.Unlock()
	}
}

// forget drops a note of a job that did not start.
func (re *roomEgress) forget(id string) {
	re.mu.Lock()
	if _, running := re.jobs[id]; !running {
		delete(re.recordsMP4, id)
	}
	re.mu.Unlock()
}

// update applies one status and passes the job's room state on when it
// may have changed. A job captures while starting or running; once
// stopping it only finishes its files.
func (re *roomEgress) update(n *Node, st egressapi.Status) {
	if st.RoomID == "" || st.Kind == egressapi.KindMerge {
		return
	}
	re.mu.Lock()
	if st.State == egressapi.StateStarting || st.State == egressapi.StateRunning {
		re.jobs[st.ID] = egressJob{room: st.RoomID, kind: st.Kind, records: re.recordsMP4[st.ID]}
	} else {
		delete(re.jobs, st.ID)
		delete(re.recordsMP4, st.ID)
	}
	var state wire.EgressState
	for _, j := range re.jobs {
		if j.room != st.RoomID {
			continue
		}
		switch j.kind {
		case egressapi.KindComposite, egressapi.KindParticipant, egressapi.KindTrack:
			state.Recording = true
		case egressapi.KindRTMP:
			state.Streaming = true
		case egressapi.KindHLS:
			state.Streaming = true
			// Recording enabled: the stream is also stored as a file, and
			// participants are told they are recorded.
			state.Recording = state.Recording || j.records
		}
	}
	if sig := n.sigReady.Load(); sig != nil {
		sig.SetEgress(st.RoomID, "", state) // tells the room only on a change
	}
	re.mu.Unlock()
}

// mountEgress adds the internal job calls (control plane) and the public
// HLS and file routes (players).
func (n *Node) mountEgress(app fiber.Router) {
	app.Post(edgeapi.EgressStartPath, n.checkInternal, n.handleEgressStart)
	app.Post(edgeapi.EgressStopPath, n.checkInternal, n.handleEgressStop)
	app.Post(edgeapi.EgressStatusPath, n.checkInternal, n.handleEgressStatus)
	app.Post(edgeapi.EgressCapturePath, n.checkInternal, n.handleEgressCapture)
	app.Post(edgeapi.EgressDeletePath, n.checkInternal, n.handleEgressDelete)
	var hls fiber.Handler = func(c *fiber.Ctx) error { return egressFail(c, http.StatusNotFound, "no such stream", "") }
	if n.egress != nil {
		serve := adaptor.HTTPHandler(http.StripPrefix(strings.TrimSuffix(edgeapi.EgressHLSPrefix, "/"), n.egress.HLSHandler()))
		hls = func(c *fiber.Ctx) error {
			// The HLS handler sets its own CORS headers; on a listener
			// shared with the API (`meridian dev`) the API's CORS middleware
			// has set one already and the adaptor adds the second: browsers
			// refuse "Access-Control-Allow-Origin: *, *".
			c.Response().Header.Del(fiber.HeaderAccessControlAllowOrigin)
			return serve(c)
		}
	}
	app.All(edgeapi.EgressHLSPrefix+"*", hls)
	app.All(edgeapi.EgressFilesPrefix+"*", n.handleFile)
	// A room the control plane closes ends its jobs first (files stored,
	// status stopped), then signalling disconnects everyone.
	app.Post("/internal/v1/rooms/close", n.checkInternal, n.stopRoomEgress)
}

// egressFail answers an EgressError.
func egressFail(c *fiber.Ctx, status int, msg, field string) error {
	return c.Status(status).JSON(edgeapi.EgressError{Message: msg, Field: field})
}

// egressError maps a runner error to the contract's status.
func (n *Node) egressError(c *fiber.Ctx, err error) error {
	var fe *egressapi.FieldError
	switch {
	case errors.As(err, &fe):
		return egressFail(c, http.StatusBadRequest, fe.Error(), fe.Field)
	case errors.Is(err, storage.ErrNoStorageForRegion):
		return egressFail(c, http.StatusBadRequest, err.Error(), "")
	case errors.Is(err, egress.ErrNotCapturable):
		return egressFail(c, http.StatusBadRequest, err.Error(), "id")
	case errors.Is(err, egress.ErrRoomNotFound), errors.Is(err, egress.ErrNoParticipants), errors.Is(err, egress.ErrParticipantAbsent),
		errors.Is(err, egress.ErrTrackAbsent), errors.Is(err, egress.ErrJobNotFound):
		return egressFail(c, http.StatusNotFound, err.Error(), "")
	case errors.Is(err, egress.ErrJobExists), errors.Is(err, egress.ErrJobEnded):
		return egressFail(c, http.StatusConflict, err.Error(), "")
	case errors.Is(err, egress.ErrClosed):
		return egressFail(c, http.StatusServiceUnavailable, "edge is shutting down", "")
	}
	n.log.Warn("egress call failed", "path", c.Path(), "err", err)
	return egressFail(c, http.StatusInternalServerError, err.Error(), "")
}

// egressReady answers 503 when jobs cannot run here (off, draining, closing).
func (n *Node) egressReady(c *fiber.Ctx, starting bool) bool {
	switch {
	case n.egress == nil:
		_ = egressFail(c, http.StatusServiceUnavailable, n.egressOff, "")
		return false
	case starting && n.draining.Load():
		_ = egressFail(c, http.StatusServiceUnavailable, "edge is draining", "")
		return false
	}
	return true
}

// decodeBody reads a JSON body, or answers 400 and reports false. Unknown
// fields are ignored, so a newer control plane can call an older edge
// during a rolling upgrade.
func decodeBody(c *fiber.Ctx, v any) bool {
	if err := json.Unmarshal(c.Body(), v); err != nil {
		_ = egressFail(c, http.StatusBadRequest, "invalid JSON body: "+err.Error(), "")
		return false
	}
	return true
}

// handleEgressStart: POST EgressStartPath, Spec → Status.
func (n *Node) handleEgressStart(c *fiber.Ctx) error {
	if !n.egressReady(c, true) {
		return nil
	}
	var spec egressapi.Spec
	if !decodeBody(c, &spec) {
		return nil
	}
	// A repeated start of a known job only gets its 409.
	if _, known := n.egress.Status(spec.ID); !known {
		if n.casc != nil && capturesRoom(spec) {
			n.prepareRoomMedia(spec)
		}
		if n.egRooms != nil {
			n.egRooms.noteStart(spec)
		}
	}
	st, err := n.egress.Start(spec)
	if err != nil {
		if !errors.Is(err, egress.ErrJobExists) {
			if n.casc != nil && capturesRoom(spec) {
				n.casc.Release(spec.RoomID, egressHold(spec.ID))
			}
			if n.egRooms != nil {
				n.egRooms.forget(spec.ID)
			}
		}
		return n.egressError(c, err)
	}
	return c.JSON(st)
}

func (n *Node) jobID(c *fiber.Ctx) (string, bool) {
	var req edgeapi.EgressStop
	if !decodeBody(c, &req) {
		return "", false
	}
	if req.ID == "" {
		_ = egressFail(c, http.StatusBadRequest, "id is required", "id")
		return "", false
	}
	return req.ID, true
}

// handleEgressStop: POST EgressStopPath, EgressStop → Status (stopping).
func (n *Node) handleEgressStop(c *fiber.Ctx) error {
	if !n.egressReady(c, false) {
		return nil
	}
	id, ok := n.jobID(c)
	if !ok {
		return nil
	}
	st, err := n.egress.Stop(id)
	if err != nil {
		return n.egressError(c, err)
	}
	return c.JSON(st)
}

// handleEgressStatus: POST EgressStatusPath, EgressStop → Status.
func (n *Node) handleEgressStatus(c *fiber.Ctx) error {
	if !n.egressReady(c, false) {
		return nil
	}
	id, ok := n.jobID(c)
	if !ok {
		return nil
	}
	st, found := n.egress.Status(id)
	if !found {
		return n.egressError(c, egress.ErrJobNotFound)
	}
	return c.JSON(st)
}

// handleEgressCapture: POST EgressCapturePath, EgressCapture → image.
func (n *Node) handleEgressCapture(c *fiber.Ctx) error {
	if !n.egressReady(c, false) {
		return nil
	}
	var req edgeapi.EgressCapture
	if !decodeBody(c, &req) {
		return nil
	}
	if req.ID == "" {
		return egressFail(c, http.StatusBadRequest, "id is required", "id")
	}
	format := strings.ToLower(req.Format)
	if format == "jpeg" {
		format = "jpg"
	}
	f, img, err := n.egress.Capture(req.ID, egress.CaptureOptions{Width: req.Width, Height: req.Height, Format: format, At: req.Time})
	if err != nil {
		return n.egressError(c, err)
	}
	meta, _ := json.Marshal(f)
	c.Set(edgeapi.EgressCaptureFileHeader, string(meta))
	ctype := "image/jpeg"
	if f.Format == "png" {
		ctype = "image/png"
	}
	c.Set(fiber.HeaderContentType, ctype)
	return c.Send(img)
}

// handleEgressDelete: POST EgressDeletePath, EgressDelete → {"deleted": n}.
// Everything is checked before anything is removed.
func (n *Node) handleEgressDelete(c *fiber.Ctx) error {
	if !n.egressReady(c, false) {
		return nil
	}
	var req edgeapi.EgressDelete
	if !decodeBody(c, &req) {
		return nil
	}
	if req.ID == "" && len(req.Files) == 0 {
		return egressFail(c, http.StatusBadRequest, "id or files is required", "id")
	}
	targets := make([]storage.Target, len(req.Files))
	for i, f := range req.Files {
		t, err := storage.Find(n.cfg.Egress.Storage, f.Storage)
		if err != nil {
			return egressFail(c, http.StatusBadRequest, err.Error(), fmt.Sprintf("files[%d].storage", i))
		}
		if _, err := storage.CleanKey(f.Key); err != nil {
			return egressFail(c, http.StatusBadRequest, err.Error(), fmt.Sprintf("files[%d].key", i))
		}
		targets[i] = t
	}
	if req.ID != "" {
		if st, ok := n.egress.Status(req.ID); ok && !st.State.Final() {
			return egressFail(c, http.StatusConflict, "job is still "+string(st.State)+"; stop it first", "")
		}
		if err := n.egress.Forget(req.ID); err != nil && !errors.Is(err, egress.ErrJobNotFound) {
			return n.egressError(c, err)
		}
	}
	for i, f := range req.Files {
		if err := targets[i].Delete(c.UserContext(), f.Key); err != nil {
			return n.egressError(c, err)
		}
	}
	return c.JSON(fiber.Map{"deleted": len(req.Files)})
}

// stopRoomEgress stops the jobs of a room the control plane closes, then
// passes the call on to signalling. Stop only starts the finish (files
// are stored in the background, the statuses follow through the agent).
func (n *Node) stopRoomEgress(c *fiber.Ctx) error {
	var req edgeapi.CloseRoom
	if n.egress != nil && json.Unmarshal(c.Body(), &req) == nil && req.RoomID != "" {
		for _, st := range n.egress.List() {
			if st.RoomID == req.RoomID && !st.State.Final() {
				if _, err := n.egress.Stop(st.ID); err != nil && !errors.Is(err, egress.ErrJobEnded) {
					n.log.Warn("stopping the job of a closed room failed", "job", st.ID, "room", req.RoomID, "err", err)
				}
			}
		}
	}
	return c.Next()
}

// handleFile serves a local target's file at
// EgressFilesPrefix<storage>/<key>?exp=…&sig=…, signed by the control
// plane's ticket key, or redirects to an S3 target's object. Files are streamed by fasthttp (Range, HEAD), not
// buffered: recordings are large.
func (n *Node) handleFile(c *fiber.Ctx) error {
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderAccessControlExposeHeaders, "Content-Length, Content-Range, Accept-Ranges")
	switch c.Method() {
	case fiber.MethodOptions:
		c.Set(fiber.HeaderAccessControlAllowMethods, "GET, HEAD, OPTIONS")
		c.Set(fiber.HeaderAccessControlAllowHeaders, "Range")
		return c.SendStatus(fiber.StatusNoContent)
	case fiber.MethodGet, fiber.MethodHead:
	default:
		c.Set(fiber.HeaderAllow, "GET, HEAD, OPTIONS")
		return egressFail(c, http.StatusMethodNotAllowed, "method not allowed", "")
	}
	// The decoded path: SignURL percent-encodes the key segment by segment.
	rest := strings.TrimPrefix(string(c.Request().URI().Path()), edgeapi.EgressFilesPrefix)
	name, key, ok := strings.Cut(rest, "/")
	var target *storage.Local
	for _, l := range n.localFiles {
		if l.Name() == name {
			target = l
		}
	}
	var pub []byte
	if k := n.ticketKey.Load(); k != nil {
		pub = *k
	}
	if t, err := storage.Find(n.cfg.Egress.Storage, name); ok && target == nil && err == nil {
		// A file in object storage: the same signed URL (the control plane
		// signs it without S3 credentials), answered with a redirect to a
		// presigned URL that expires with it.
		if s3, isS3 := t.(*storage.S3); isS3 {
			u, err := s3.AuthorizeRedirect(c.UserContext(), pub, key, c.Query("exp"), c.Query("sig"), time.Now())
			if err != nil {
				var de *storage.DownloadError
				if errors.As(err, &de) {
					return egressFail(c, de.Status, de.Message, "")
				}
				return err
			}
			c.Set(fiber.HeaderCacheControl, "private, no-store")
			return c.Redirect(u.String(), http.StatusFound)
		}
	}
	if !ok || target == nil {
		return egressFail(c, http.StatusNotFound, "not found", "")
	}
	p, err := target.Authorize(pub, key, c.Query("exp"), c.Query("sig"), time.Now())
	if err != nil {
		var de *storage.DownloadError
		if errors.As(err, &de) {
			return egressFail(c, de.Status, de.Message, "")
		}
		return err
	}
	c.Set(fiber.HeaderCacheControl, "private, no-transform")
	return c.SendFile(p)
}

// stopEgress ends every job (files stored, statuses reported) within
// bound, before the agent's last flush. A job still finishing then is
// left to die with the process (its ffmpeg children get SIGKILL).
func (n *Node) stopEgress(bound time.Duration) {
	if n.egress == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.egress.Close()
	}()
	select {
	case <-done:
	case <-time.After(bound):
		n.log.Warn("egress jobs did not finish in time; shutting down anyway", "bound", bound)
	}
}

// stopAllEgress asks every running job to finish (end of a drain) and
// waits for them, at most until ctx ends.
func (n *Node) stopAllEgress(ctx context.Context) {
	if n.egress == nil {
		return
	}
	var ids []string
	for _, st := range n.egress.List() {
		if !st.State.Final() {
			if _, err := n.egress.Stop(st.ID); err == nil {
				ids = append(ids, st.ID)
			}
		}
	}
	for _, id := range ids {
		if _, err := n.egress.Wait(ctx, id); err != nil {
			return
		}
	}
}
