package api

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/ids"
)

// EgressService runs recording, RTMP and HLS jobs (control/egress): it
// records a job in Raft and has the edge serving the room run it.
type EgressService interface {
	// Start records job (kind, project options) for room and asks the edge
	// to run spec (normalized by the service after it fills id, room,
	// session and regions).
	Start(ctx context.Context, room *state.Room, job state.Job, spec egressapi.Spec) (*state.Job, error)
	// Stop asks the job's edge to stop it.
	Stop(ctx context.Context, job *state.Job) (*state.Job, error)
	// Capture grabs (and stores) a picture of an HLS job.
	Capture(ctx context.Context, job *state.Job, req edgeapi.EgressCapture) (*egressapi.File, string, error)
	// FileURL signs a fresh download URL for one of the job's files.
	FileURL(job *state.Job, f egressapi.File) string
	// Delete removes the files and HLS output an ended job left on its
	// edge (before its record is deleted).
	Delete(ctx context.Context, job *state.Job) error
}

// WithEgressService enables the recording, RTMP and HLS routes.
func WithEgressService(e EgressService) Option { return func(s *Server) { s.egress = e } }

// egressRoutes mounts §5-10 of the VideoSDK contract, plus the server
// SDK's /v2/recordings/composite family. Specific paths come before the
// /:id ones that would otherwise match them.
func (s *Server) egressRoutes(r fiber.Router) {
	need := func(h fiber.Handler) fiber.Handler {
		return func(c *fiber.Ctx) error {
			if s.egress == nil {
				return &Error{Status: fiber.StatusServiceUnavailable, Message: "recording, RTMP and HLS are not enabled on this control node"}
			}
			return h(c)
		}
	}
	post := func(path string, h fiber.Handler) { r.Post(path, need(h)) }
	get := func(path string, h fiber.Handler) { r.Get(path, need(h)) }
	del := func(path string, h fiber.Handler) { r.Delete(path, need(h)) }

	post("/recordings/participant/merge", s.startMerge)
	get("/recordings/participant/merge", s.listMerges)
	get("/recordings/participant/merge/:id", s.getMerge)

	post("/recordings/participant/track/start", s.startTrackRecording)
	post("/recordings/participant/track/stop", s.stopTrackRecording)
	post("/recordings/participant/track/end", s.stopTrackRecording)
	get("/recordings/participant/track", s.listJobs(egressapi.KindTrack))
	get("/recordings/participant/track/:id", s.getJob(egressapi.KindTrack))
	del("/recordings/participant/track/:id", s.deleteJob(egressapi.KindTrack, "Track Recording deleted successfully."))

	post("/recordings/participant/start", s.startParticipantRecording)
	post("/recordings/participant/stop", s.stopParticipantRecording)
	post("/recordings/participant/end", s.stopParticipantRecording)
	get("/recordings/participant", s.listJobs(egressapi.KindParticipant))
	get("/recordings/participant/:id", s.getJob(egressapi.KindParticipant))
	del("/recordings/participant/:id", s.deleteJob(egressapi.KindParticipant, "Participant Recording deleted successfully."))

	post("/recordings/composite/start", s.startRecording(true))
	post("/recordings/composite/stop", s.stopJob(egressapi.KindComposite, "Recording ended successfully"))
	post("/recordings/composite/end", s.stopJob(egressapi.KindComposite, "Recording ended successfully"))
	get("/recordings/composite", s.listJobs(egressapi.KindComposite))
	get("/recordings/composite/:id", s.getJob(egressapi.KindComposite))
	del("/recordings/composite/:id", s.deleteJob(egressapi.KindComposite, "Room recording deleted successfully"))

	post("/recordings/start", s.startRecording(false))
	post("/recordings/end", s.stopJob(egressapi.KindComposite, "Recording ended successfully"))
	post("/recordings/stop", s.stopJob(egressapi.KindComposite, "Recording ended successfully"))
	get("/recordings", s.listJobs(egressapi.KindComposite))
	get("/recordings/:id", s.getJob(egressapi.KindComposite))
	del("/recordings/:id", s.deleteJob(egressapi.KindComposite, "Room recording deleted successfully"))

	post("/livestreams/start", s.startLivestream)
	post("/livestreams/end", s.stopJob(egressapi.KindRTMP, "Livestream ended successfully"))
	post("/livestreams/stop", s.stopJob(egressapi.KindRTMP, "Livestream ended successfully"))
	get("/livestreams", s.listJobs(egressapi.KindRTMP))
	get("/livestreams/:id", s.getJob(egressapi.KindRTMP))

	post("/hls/start", s.startHLS)
	post("/hls/end", s.stopJob(egressapi.KindHLS, "HLS ended successfully"))
	post("/hls/stop", s.stopJob(egressapi.KindHLS, "HLS ended successfully"))
	post("/hls/capture", s.captureHLS)
	get("/hls", s.listJobs(egressapi.KindHLS))
	get("/hls/:roomId/active", s.activeHLS)
	get("/hls/:id", s.getJob(egressapi.KindHLS))
	del("/hls/:id", s.deleteJob(egressapi.KindHLS, "Room Hls Recording deleted successfully !"))
}

// Request bodies. Pointers tell "absent" from "empty"; unknown fields
// (resourceId, onFailure, metadata...) are accepted and ignored.

type transcriptionReq struct {
	Enabled bool `json:"enabled"`
}

type recordingStartReq struct {
	RoomID        *string           `json:"roomId"`
	Config        *egressapi.Config `json:"config"`
	TemplateURL   *string           `json:"templateUrl"`
	Transcription *transcriptionReq `json:"transcription"`
	WebhookURL    *string           `json:"webhookUrl"`
	AWSDirPath    *string           `json:"awsDirPath"`
	BucketDirPath *string           `json:"bucketDirPath"`
	PreSignedURL  *string           `json:"preSignedUrl"`
	PreSignedURL2 *string           `json:"preSignedURL"`
	FileFormat    *string           `json:"fileFormat"`
}

type participantStartReq struct {
	RoomID        *string `json:"roomId"`
	ParticipantID *string `json:"participantId"`
	Kind          *string `json:"kind"`
	FileFormat    *string `json:"fileFormat"`
	WebhookURL    *string `json:"webhookUrl"`
	BucketDirPath *string `json:"bucketDirPath"`
}

type stopReq struct {
	RoomID        *string `json:"roomId"`
	ID            *string `json:"id"`
	RecordingID   *string `json:"recordingId"`
	ParticipantID *string `json:"participantId"`
	Kind          *string `json:"kind"`
}

type livestreamStartReq struct {
	RoomID        *string                `json:"roomId"`
	Outputs       []egressapi.RTMPOutput `json:"outputs"`
	Config        *egressapi.Config      `json:"config"`
	TemplateURL   *string                `json:"templateUrl"`
	Transcription *transcriptionReq      `json:"transcription"`
	WebhookURL    *string                `json:"webhookUrl"`
}

type recordingFlag struct {
	Enabled bool `json:"enabled"`
}

type hlsConfigReq struct {
	egressapi.Config
	Recording *recordingFlag `json:"recording"`
}

type hlsStartReq struct {
	RoomID        *string           `json:"roomId"`
	Config        *hlsConfigReq     `json:"config"`
	TemplateURL   *string           `json:"templateUrl"`
	Transcription *transcriptionReq `json:"transcription"`
	Summary       *transcriptionReq `json:"summary"`
	WebhookURL    *string           `json:"webhookUrl"`
	Recording     *recordingFlag    `json:"recording"`
	// HLS tunes the stream (Meridian extension): segmentSeconds,
	// windowSegments (the live.m3u8 window), renditions.
	HLS *egressapi.HLSOptions `json:"hls"`
}

type mergeEntryReq struct {
	ParticipantID *string `json:"participantId"`
	RecordingID   *string `json:"recordingId"`
	Type          *string `json:"type"`
}

type mergeStartReq struct {
	SessionID  *string         `json:"sessionId"`
	Channel1   []mergeEntryReq `json:"channel1"`
	Channel2   []mergeEntryReq `json:"channel2"`
	WebhookURL *string         `json:"webhookUrl"`
	Type       *string         `json:"type"`
	DirPath    *string         `json:"dirPath"`
}

type captureReq struct {
	RoomID *string  `json:"roomId"`
	Time   *float64 `json:"time"`
	Width  *int     `json:"width"`
	Height *int     `json:"height"`
	Format *string  `json:"format"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return strings.TrimSpace(*p)
}

// requiredRoom resolves the body's roomId (or customRoomId) under the
// caller's scope, as a write route does (a miss from stale state is a 503).
func (s *Server) requiredRoom(c *fiber.Ctx, ref *string) (*state.Room, error) {
	if str(ref) == "" {
		return nil, invalidField("roomId", "is required")
	}
	return s.findRoomToWrite(c, str(ref))
}

// unsupported rejects options this deployment cannot honour, naming the
// field (a silent ignore would produce something else than asked).
func unsupported(templateURL *string, tr *transcriptionReq, trField string) error {
	if str(templateURL) != "" {
		return invalidField("templateUrl", "is not supported: Meridian composes on the edge without a browser; use config.layout")
	}
	if tr != nil && tr.Enabled {
		return invalidField(trField+".enabled", "is not supported: Meridian has no transcription")
	}
	return nil
}

func (s *Server) jobWebhook(p *string) (string, error) {
	u := str(p)
	if u == "" {
		return "", nil
	}
	if err := validateWebhookURL("webhookUrl", u); err != nil {
		return "", err
	}
	if s.checkURL != nil {
		if err := s.checkURL(u); err != nil {
			return "", invalidField("webhookUrl", "is not allowed: %v", err)
		}
	}
	return u, nil
}

// dirField is one directory field of a request body: its REST name (so a
// 400 names the field the bad value came in) and its value.
type dirField struct {
	name string
	v    *string
}

// dirPath returns the first non-empty directory among fields, trimmed of
// slashes, or a 400 naming that field.
func dirPath(fields ...dirField) (string, error) {
	for _, f := range fields {
		if v := str(f.v); v != "" {
			v = strings.Trim(v, "/")
			if len(v) > 512 || strings.Contains(v, "..") || unsafeText(v) {
				return "", invalidField(f.name, "must be a relative path of at most 512 characters without \"..\"")
			}
			return v, nil
		}
	}
	return "", nil
}

// checkSpec checks a spec the way the edge will (field errors → 400
// naming the REST field) before anything is recorded.
func checkSpec(spec egressapi.Spec) error {
	spec.ID = "000000000000000000000000"
	if spec.RoomID == "" {
		spec.RoomID = "check"
	}
	if spec.Kind == egressapi.KindMerge {
		spec.SessionID = "check"
	}
	norm, err := spec.Normalize()
	if fe := (*egressapi.FieldError)(nil); err != nil && asFieldError(err, &fe) {
		return invalidField(fe.Field, "%s", fe.Message)
	}
	if err != nil {
		return err
	}
	switch spec.Kind {
	case egressapi.KindComposite, egressapi.KindRTMP, egressapi.KindHLS:
		return notRendered(norm.Config, "config")
	}
	return nil
}

// notRendered rejects the config values the shared contract accepts but
// the edge compositor cannot render as asked (a normalized config; prefix
// names the object in the request), so the caller gets a 400 naming the
// field instead of a different layout or size than it asked for:
//   - layout.priority PIN: pins are client-side state no Meridian edge
//     receives, so the compositor would fall back to join order;
//   - quality ultra: the largest size the compositor renders is high's
//     1920×1080 (and a larger one would not fit the one-core budget).
func notRendered(cfg egressapi.Config, prefix string) error {
	if cfg.Layout.Priority == egressapi.PriorityPin {
		return invalidField(prefix+".layout.priority", "PIN is not supported: Meridian does not know which participants are pinned; the supported value is SPEAKER (the default)")
	}
	if cfg.Quality == egressapi.QualityUltra {
		return invalidField(prefix+".quality", "ultra is not supported: the largest output is high (1920x1080); supported values are low, med and high")
	}
	return nil
}

func (s *Server) startRecording(composite bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req recordingStartReq
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		room, err := s.requiredRoom(c, req.RoomID)
		if err != nil {
			return err
		}
		if err := unsupported(req.TemplateURL, req.Transcription, "transcription"); err != nil {
			return err
		}
		if f := strings.ToLower(str(req.FileFormat)); f != "" && f != "mp4" {
			return invalidField("fileFormat", "must be mp4 (meeting recordings are MP4), not %q", echo(f))
		}
		if str(req.PreSignedURL) != "" || str(req.PreSignedURL2) != "" {
			return invalidField("preSignedUrl", "is not supported: files go to the storage configured on the edge")
		}
		hook, err := s.jobWebhook(req.WebhookURL)
		if err != nil {
			return err
		}
		dir, err := dirPath(dirField{"awsDirPath", req.AWSDirPath}, dirField{"bucketDirPath", req.BucketDirPath})
		if err != nil {
			return err
		}
		spec := egressapi.Spec{Kind: egressapi.KindComposite, DirPath: dir}
		if req.Config != nil {
			spec.Config = *req.Config
		}
		if err := checkSpec(spec); err != nil {
			return err
		}
		cfg, _ := spec.Config.Normalize(egressapi.KindComposite, "config")
		job := state.Job{Kind: egressapi.KindComposite, Config: cfg, WebhookURL: hook, DirPath: dir, FileFormat: "mp4"}
		j, err := s.egress.Start(c.UserContext(), room, job, spec)
		if err != nil {
			return err
		}
		if composite {
			// The server SDK's composite resource needs the id to stop it.
			return c.JSON(fiber.Map{"message": "Recording started successfully", "recordingId": j.ID, "id": j.ID, "roomId": j.RoomID, "sessionId": j.SessionID, "status": j.State})
		}
		return c.JSON("Recording started successfully")
	}
}

func (s *Server) startParticipantRecording(c *fiber.Ctx) error { return s.startIndividual(c, false) }
func (s *Server) startTrackRecording(c *fiber.Ctx) error       { return s.startIndividual(c, true) }

func (s *Server) startIndividual(c *fiber.Ctx, track bool) error {
	var req participantStartReq
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	room, err := s.requiredRoom(c, req.RoomID)
	if err != nil {
		return err
	}
	pid := str(req.ParticipantID)
	if pid == "" {
		return invalidField("participantId", "is required")
	}
	hook, err := s.jobWebhook(req.WebhookURL)
	if err != nil {
		return err
	}
	dir, err := dirPath(dirField{"bucketDirPath", req.BucketDirPath})
	if err != nil {
		return err
	}
	spec := egressapi.Spec{Kind: egressapi.KindParticipant, ParticipantID: pid, FileFormat: str(req.FileFormat), DirPath: dir}
	msg := "participant recording started successfully."
	if track {
		if str(req.Kind) == "" {
			return invalidField("kind", "is required (audio, video, screen_audio or screen_video)")
		}
		spec.Kind, spec.TrackKind = egressapi.KindTrack, str(req.Kind)
		msg = "track recording started successfully."
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	norm, _ := (egressapi.Spec{ID: "x", RoomID: "x", Kind: spec.Kind, ParticipantID: pid, TrackKind: spec.TrackKind, FileFormat: spec.FileFormat}).Normalize()
	job := state.Job{Kind: spec.Kind, ParticipantID: pid, TrackKind: spec.TrackKind, FileFormat: norm.FileFormat, WebhookURL: hook, DirPath: dir}
	if _, err := s.egress.Start(c.UserContext(), room, job, spec); err != nil {
		return err
	}
	return c.JSON(msg)
}

func (s *Server) startLivestream(c *fiber.Ctx) error {
	var req livestreamStartReq
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	room, err := s.requiredRoom(c, req.RoomID)
	if err != nil {
		return err
	}
	if err := unsupported(req.TemplateURL, req.Transcription, "transcription"); err != nil {
		return err
	}
	hook, err := s.jobWebhook(req.WebhookURL)
	if err != nil {
		return err
	}
	spec := egressapi.Spec{Kind: egressapi.KindRTMP, Outputs: req.Outputs}
	if req.Config != nil {
		spec.Config = *req.Config
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	cfg, _ := spec.Config.Normalize(egressapi.KindRTMP, "config")
	job := state.Job{Kind: egressapi.KindRTMP, Config: cfg, Outputs: req.Outputs, WebhookURL: hook}
	if _, err := s.egress.Start(c.UserContext(), room, job, spec); err != nil {
		return err
	}
	return c.JSON("Livestream started successfully")
}

func (s *Server) startHLS(c *fiber.Ctx) error {
	var req hlsStartReq
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	room, err := s.requiredRoom(c, req.RoomID)
	if err != nil {
		return err
	}
	if err := unsupported(req.TemplateURL, req.Transcription, "transcription"); err != nil {
		return err
	}
	if req.Summary != nil && req.Summary.Enabled {
		return invalidField("summary.enabled", "is not supported: Meridian has no transcription")
	}
	hook, err := s.jobWebhook(req.WebhookURL)
	if err != nil {
		return err
	}
	spec := egressapi.Spec{Kind: egressapi.KindHLS}
	if req.Config != nil {
		spec.Config = req.Config.Config
		if req.Config.Recording != nil {
			spec.HLS.Record = req.Config.Recording.Enabled
		}
	}
	if req.Recording != nil {
		spec.HLS.Record = spec.HLS.Record || req.Recording.Enabled
	}
	if req.HLS != nil {
		spec.HLS.SegmentSeconds, spec.HLS.WindowSegments, spec.HLS.Renditions = req.HLS.SegmentSeconds, req.HLS.WindowSegments, req.HLS.Renditions
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	cfg, _ := spec.Config.Normalize(egressapi.KindHLS, "config")
	job := state.Job{Kind: egressapi.KindHLS, Config: cfg, WebhookURL: hook}
	j, err := s.egress.Start(c.UserContext(), room, job, spec)
	if err != nil {
		return err
	}
	return c.JSON(s.hlsView(j))
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (s *Server) startMerge(c *fiber.Ctx) error {
	p := principal(c)
	var req mergeStartReq
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	sid := str(req.SessionID)
	if sid == "" {
		return invalidField("sessionId", "is required")
	}
	if !ids.IsDocID(sid) {
		return invalidField("sessionId", "must be 24 lowercase hex characters")
	}
	if len(req.Channel1) == 0 && len(req.Channel2) == 0 {
		return invalidField("channel1", "channel1 and channel2 are both empty")
	}
	hook, err := s.jobWebhook(req.WebhookURL)
	if err != nil {
		return err
	}
	dir, err := dirPath(dirField{"dirPath", req.DirPath})
	if err != nil {
		return err
	}
	ss, err := s.findSession(c, sid)
	if err != nil {
		return err
	}
	var room *state.Room
	s.node.FSM().Read(func(st *state.Store) { room, _ = st.RoomByRoomID(ss.RoomID) })
	if room == nil {
		return notFound(fmt.Sprintf("room of session %q not found", sid))
	}
	if err := p.CheckRoom(room.RoomID, room.CustomRoomID, room.ID); err != nil {
		return err
	}
	job := state.Job{Kind: egressapi.KindMerge, SessionID: sid, WebhookURL: hook, DirPath: dir}
	spec := egressapi.Spec{Kind: egressapi.KindMerge, SessionID: sid, DirPath: dir}
	var resolveErr error
	s.node.FSM().Read(func(st *state.Store) {
		resolve := func(name string, entries []mergeEntryReq) ([]egressapi.MergeInput, []state.MergeRef) {
			var ins []egressapi.MergeInput
			var refs []state.MergeRef
			for i, e := range entries {
				if resolveErr != nil {
					return nil, nil
				}
				field := fmt.Sprintf("%s[%d]", name, i)
				pid := str(e.ParticipantID)
				if pid == "" {
					resolveErr = invalidField(field+".participantId", "is required")
					return nil, nil
				}
				src := mergeSource(st, p.Key.UserID, sid, pid, str(e.RecordingID))
				if src == nil {
					resolveErr = invalidField(field+".recordingId", "no finished recording of participant %q in session %s", echo(pid), sid)
					return nil, nil
				}
				if job.EdgeID == "" {
					job.EdgeID = src.EdgeID
				}
				refs = append(refs, state.MergeRef{ParticipantID: pid, RecordingID: src.ID})
				for _, f := range src.Files {
					if src.Kind == egressapi.KindTrack && f.TrackKind != "" && f.TrackKind != egressapi.TrackAudio {
						continue
					}
					start := f.Start
					if start.IsZero() && src.StartedAt != nil {
						start = *src.StartedAt
					}
					ins = append(ins, egressapi.MergeInput{ParticipantID: pid, RecordingID: src.ID, File: egressapi.FileRef{Storage: f.Storage, Key: f.Key}, Start: start})
				}
			}
			return ins, refs
		}
		spec.Channel1, job.Channel1 = resolve("channel1", req.Channel1)
		spec.Channel2, job.Channel2 = resolve("channel2", req.Channel2)
	})
	if resolveErr != nil {
		return resolveErr
	}
	j, err := s.egress.Start(c.UserContext(), room, job, spec)
	if err != nil {
		return err
	}
	v := s.mergeView(j)
	v.File = nil
	return c.JSON(fiber.Map{"message": "Merge recording job started successfully.", "recording": v})
}

// mergeSource finds the recording a merge entry names: the given id, or
// the participant's first finished participant recording in the session
// (else its first audio track recording).
func mergeSource(st *state.Store, userID, sessionID, pid, recordingID string) *state.Job {
	ok := func(j *state.Job) bool {
		return j.UserID == userID && j.SessionID == sessionID && j.ParticipantID == pid && j.State == egressapi.StateStopped && len(j.Files) > 0 && j.DeletedAt == nil
	}
	if recordingID != "" {
		if j, found := st.Job(userID, recordingID); found && ok(j) && (j.Kind == egressapi.KindParticipant || j.Kind == egressapi.KindTrack) {
			return j
		}
		return nil
	}
	for _, j := range st.SessionJobs(sessionID, egressapi.KindParticipant) {
		if ok(j) {
			return j
		}
	}
	for _, j := range st.SessionJobs(sessionID, egressapi.KindTrack) {
		if ok(j) && j.TrackKind == egressapi.TrackAudio {
			return j
		}
	}
	return nil
}

// stopJob stops the job named by id (or recordingId), else the room's
// running job of that kind.
func (s *Server) stopJob(kind egressapi.Kind, msg string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var req stopReq
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		id := str(req.ID)
		if id == "" {
			id = str(req.RecordingID)
		}
		var job *state.Job
		if id != "" {
			var err error
			if job, err = s.findJob(c, kind, id); err != nil {
				return err
			}
			if ref := str(req.RoomID); ref != "" {
				room, err := s.findRoom(c, ref)
				if err != nil {
					return err
				}
				if room.RoomID != job.RoomID {
					return notFound(fmt.Sprintf("%s %q is not in room %q", kind.Noun(), id, echo(ref)))
				}
			}
		} else {
			room, err := s.requiredRoom(c, req.RoomID)
			if err != nil {
				return err
			}
			if job = s.runningJob(room, kind, func(*state.Job) bool { return true }); job == nil {
				return notFound(fmt.Sprintf("no %s is running in room %q", kind.Noun(), room.RoomID))
			}
		}
		if _, err := s.egress.Stop(c.UserContext(), job); err != nil {
			return err
		}
		return c.JSON(msg)
	}
}

func (s *Server) stopParticipantRecording(c *fiber.Ctx) error {
	return s.stopIndividual(c, egressapi.KindParticipant, "participant recording ended successfully.")
}

func (s *Server) stopTrackRecording(c *fiber.Ctx) error {
	return s.stopIndividual(c, egressapi.KindTrack, "track recording ended successfully.")
}

func (s *Server) stopIndividual(c *fiber.Ctx, kind egressapi.Kind, msg string) error {
	var req stopReq
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	room, err := s.requiredRoom(c, req.RoomID)
	if err != nil {
		return err
	}
	pid := str(req.ParticipantID)
	if pid == "" {
		return invalidField("participantId", "is required")
	}
	trackKind := str(req.Kind)
	if kind == egressapi.KindTrack && trackKind == "" {
		return invalidField("kind", "is required (the kind the track recording was started with)")
	}
	job := s.runningJob(room, kind, func(j *state.Job) bool {
		return j.ParticipantID == pid && (kind != egressapi.KindTrack || j.TrackKind == trackKind)
	})
	if job == nil {
		what := fmt.Sprintf("participant %q", echo(pid))
		if kind == egressapi.KindTrack {
			what = fmt.Sprintf("the %s track of participant %q", echo(trackKind), echo(pid))
		}
		return notFound(fmt.Sprintf("no recording of %s is running in room %q", what, room.RoomID))
	}
	if _, err := s.egress.Stop(c.UserContext(), job); err != nil {
		return err
	}
	return c.JSON(msg)
}

// runningJob is the room's newest job of kind that may still change and
// matches.
func (s *Server) runningJob(room *state.Room, kind egressapi.Kind, match func(*state.Job) bool) *state.Job {
	var out *state.Job
	s.node.FSM().Read(func(st *state.Store) {
		for _, j := range st.ActiveJobs(room.RoomID, kind) {
			if j.UserID == room.UserID && match(j) {
				out = j
			}
		}
	})
	return out
}

func (s *Server) captureHLS(c *fiber.Ctx) error {
	var req captureReq
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	room, err := s.requiredRoom(c, req.RoomID)
	if err != nil {
		return err
	}
	format := strings.ToLower(str(req.Format))
	switch format {
	case "", "jpg", "jpeg":
		format = "jpg"
	case "png":
	default:
		return invalidField("format", "must be jpg or png, not %q", echo(format))
	}
	er := edgeapi.EgressCapture{Format: map[string]string{"jpg": "jpeg", "png": "png"}[format], Time: req.Time}
	if req.Width != nil {
		if *req.Width < 16 || *req.Width > 3840 {
			return invalidField("width", "must be between 16 and 3840")
		}
		er.Width = *req.Width
	}
	if req.Height != nil {
		if *req.Height < 16 || *req.Height > 3840 {
			return invalidField("height", "must be between 16 and 3840")
		}
		er.Height = *req.Height
	}
	if req.Time != nil && *req.Time < 0 {
		return invalidField("time", "must not be negative")
	}
	job := s.runningJob(room, egressapi.KindHLS, func(j *state.Job) bool { return j.State == egressapi.StateRunning })
	if job == nil {
		return notFound(fmt.Sprintf("no HLS stream is running in room %q", room.RoomID))
	}
	f, _, err := s.egress.Capture(c.UserContext(), job, er)
	if err != nil {
		return err
	}
	w, h := f.Width, f.Height
	if w == 0 {
		w, h = job.Config.Size()
		if er.Width > 0 {
			w = er.Width
		}
		if er.Height > 0 {
			h = er.Height
		}
	}
	name := f.Key
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return c.JSON(fiber.Map{"message": "captured thumbnail successfully", "roomId": room.RoomID,
		"meta":     fiber.Map{"createdAt": restTime(s.cfg.Now()), "width": w, "height": h, "format": format},
		"filePath": s.egress.FileURL(job, *f), "fileSize": f.Size, "fileName": name})
}

func (s *Server) activeHLS(c *fiber.Ctx) error {
	room, err := s.findRoom(c, pathRoomRef(c))
	if err != nil {
		return err
	}
	job := s.runningJob(room, egressapi.KindHLS, func(j *state.Job) bool { return j.State != egressapi.StateStopping })
	if job == nil {
		return notFound(fmt.Sprintf("no HLS stream is active in room %q", room.RoomID))
	}
	return c.JSON(fiber.Map{"code": 200, "data": s.hlsView(job)})
}

// findJob loads a job of kind by id for the caller (404 for another
// project's, a deleted one, or one of another kind; 403 for a room-scoped
// token and another room's job).
func (s *Server) findJob(c *fiber.Ctx, kind egressapi.Kind, id string) (*state.Job, error) {
	if kind == egressapi.KindMerge {
		if !uuidRe.MatchString(id) {
			return nil, badRequest("merge id must be a UUID")
		}
	} else if !ids.IsDocID(id) {
		return nil, badRequest(fmt.Sprintf("%s id must be 24 lowercase hex characters", kind.Noun()))
	}
	p := principal(c)
	var job *state.Job
	var room *state.Room
	if err := s.readOrCatchUp(c, func(st *state.Store) bool {
		job, _ = st.Job(p.Key.UserID, id)
		if job != nil {
			room, _ = st.RoomByRoomID(job.RoomID)
		}
		return job != nil
	}); err != nil {
		return nil, err
	}
	if job == nil || job.Kind != kind {
		return nil, notFound(fmt.Sprintf("%s %q not found", kind.Noun(), id))
	}
	ids := []string{job.RoomID}
	if room != nil {
		ids = append(ids, room.CustomRoomID, room.ID)
	}
	if err := p.CheckRoom(ids...); err != nil {
		return nil, err
	}
	return job, nil
}

func (s *Server) getJob(kind egressapi.Kind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		job, err := s.findJob(c, kind, c.Params("id"))
		if err != nil {
			return err
		}
		return c.JSON(s.jobView(job))
	}
}

func (s *Server) getMerge(c *fiber.Ctx) error {
	job, err := s.findJob(c, egressapi.KindMerge, c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(s.mergeView(job))
}

func (s *Server) deleteJob(kind egressapi.Kind, msg string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		job, err := s.findJob(c, kind, c.Params("id"))
		if err != nil {
			return err
		}
		if err := s.egress.Delete(c.UserContext(), job); err != nil {
			return err
		}
		if _, err := s.apply(c, state.CmdDeleteJob, state.DeleteJob{UserID: job.UserID, ID: job.ID, Kind: kind, At: s.cfg.Now().UTC()}); err != nil {
			return err
		}
		return c.JSON(msg)
	}
}

// jobFilter reads the list query: roomId (or customRoomId), sessionId,
// participantId; a room-scoped token lists only its room.
func (s *Server) jobFilter(c *fiber.Ctx, kind egressapi.Kind) (state.JobFilter, error) {
	p := principal(c)
	f := state.JobFilter{UserID: p.Key.UserID, Kind: kind}
	ref := strings.TrimSpace(c.Query("roomId"))
	if ref == "" {
		ref = strings.TrimSpace(c.Query("query"))
	}
	if ref == "" && p.Claims.RoomID != "" {
		ref = p.Claims.RoomID
	}
	if ref != "" {
		room, err := s.findRoom(c, ref)
		if err != nil {
			return f, err
		}
		f.RoomID = room.RoomID
	}
	if sid := strings.TrimSpace(c.Query("sessionId")); sid != "" {
		if !ids.IsDocID(sid) {
			return f, badRequest(`query parameter "sessionId" must be 24 lowercase hex characters`)
		}
		f.SessionID = sid
	}
	f.ParticipantID = strings.TrimSpace(c.Query("participantId"))
	return f, nil
}

func (s *Server) listJobs(kind egressapi.Kind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		pg, err := parsePage(c, 20)
		if err != nil {
			return err
		}
		f, err := s.jobFilter(c, kind)
		if err != nil {
			return err
		}
		var jobs []*state.Job
		var total int
		if err := s.read(c, func(st *state.Store) { jobs, total = st.JobsPage(f, pg.window()) }); err != nil {
			return err
		}
		views := make([]any, 0, len(jobs))
		for _, j := range jobs {
			views = append(views, s.jobView(j))
		}
		return c.JSON(fiber.Map{"pageInfo": pageInfoOf(total, pg), "data": views})
	}
}

func (s *Server) listMerges(c *fiber.Ctx) error {
	pg, err := parsePage(c, 10)
	if err != nil {
		return err
	}
	f, err := s.jobFilter(c, egressapi.KindMerge)
	if err != nil {
		return err
	}
	f.ParticipantID = ""
	switch st := c.Query("status"); st {
	case "":
	case "completed":
		f.State = egressapi.StateStopped
	case "failed":
		f.State = egressapi.StateFailed
	case "running":
		f.State = egressapi.StateRunning
	default:
		return badRequest(`query parameter "status" must be completed, failed or running`)
	}
	if id := c.Query("id"); id != "" {
		if !uuidRe.MatchString(id) {
			return badRequest(`query parameter "id" must be a UUID`)
		}
		f.ID = id
	}
	var jobs []*state.Job
	var total int
	if err := s.read(c, func(st *state.Store) { jobs, total = st.JobsPage(f, pg.window()) }); err != nil {
		return err
	}
	views := make([]mergeView, 0, len(jobs))
	for _, j := range jobs {
		views = append(views, s.mergeView(j))
	}
	return c.JSON(fiber.Map{"pageInfo": pageInfoOf(total, pg), "recordings": views})
}

// checkAutoStart validates the parts of a room's autoStartConfig that
// Meridian runs (recording, hls, livestream; control/egress.AutoStart), so
// a config that could never start is a 400 naming the field when the room
// is created rather than a silent failure when its session begins. Other
// keys are stored as given.
func checkAutoStart(raw []byte, checkURL func(string) error) error {
	type job struct {
		Config     *egressapi.Config      `json:"config"`
		AWSDirPath *string                `json:"awsDirPath"`
		WebhookURL *string                `json:"webhookUrl"`
		Outputs    []egressapi.RTMPOutput `json:"outputs"`
	}
	var a struct {
		Recording  *job `json:"recording"`
		HLS        *job `json:"hls"`
		Livestream *job `json:"livestream"`
	}
	if err := decodeBytes(raw, &a); err != nil {
		return badRequest("autoStartConfig: " + err.Error())
	}
	for _, k := range []struct {
		name string
		kind egressapi.Kind
		j    *job
	}{{"recording", egressapi.KindComposite, a.Recording}, {"hls", egressapi.KindHLS, a.HLS}, {"livestream", egressapi.KindRTMP, a.Livestream}} {
		if k.j == nil {
			continue
		}
		prefix := "autoStartConfig." + k.name + "."
		spec := egressapi.Spec{ID: "000000000000000000000000", RoomID: "check", Kind: k.kind, Outputs: k.j.Outputs}
		if k.j.Config != nil {
			spec.Config = *k.j.Config
		}
		norm, err := spec.Normalize()
		if err != nil {
			if fe := (*egressapi.FieldError)(nil); asFieldError(err, &fe) {
				return invalidField(prefix+fe.Field, "%s", fe.Message)
			}
			return badRequest(err.Error())
		}
		if err := notRendered(norm.Config, prefix+"config"); err != nil {
			return err
		}
		if _, err := dirPath(dirField{prefix + "awsDirPath", k.j.AWSDirPath}); err != nil {
			return err
		}
		if u := str(k.j.WebhookURL); u != "" {
			if err := validateWebhookURL(prefix+"webhookUrl", u); err != nil {
				return err
			}
			if checkURL != nil {
				if err := checkURL(u); err != nil {
					return invalidField(prefix+"webhookUrl", "is not allowed: %v", err)
				}
			}
		}
	}
	return nil
}
