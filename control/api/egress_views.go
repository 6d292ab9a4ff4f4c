package api

import (
	"errors"
	"fmt"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// Response shapes of §5-10: field names as documented; status, error, the
// stored files' details and what Raft holds about the job (edgeId: the edge
// node running it; duration and size: the job's totals as its edge last
// reported them, final once it ended) are Meridian extras clients may read.
// Extras are only ever added next to the documented fields.

type resolution struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

type fileMeta struct {
	Resolution *resolution `json:"resolution,omitempty"`
	Format     string      `json:"format"`
	Duration   float64     `json:"duration"`
}

type fileView struct {
	Meta        fileMeta           `json:"meta"`
	LegacyID    string             `json:"_id,omitempty"`
	UserID      string             `json:"userId,omitempty"`
	FilePath    string             `json:"filePath"`
	Size        int64              `json:"size"`
	Type        string             `json:"type"`
	UserStorage *string            `json:"userStorage"`
	CreatedAt   string             `json:"createdAt,omitempty"`
	UpdatedAt   string             `json:"updatedAt,omitempty"`
	Ratio       map[string]float64 `json:"ratio,omitempty"`
	FileURL     string             `json:"fileUrl"`
	ID          string             `json:"id"`
	Storage     string             `json:"storage,omitempty"`
	Region      string             `json:"region,omitempty"`
	Start       *string            `json:"start,omitempty"`
	End         *string            `json:"end,omitempty"`
}

func (s *Server) fileViewOf(j *state.Job, i int, f egressapi.File) fileView {
	v := fileView{Meta: fileMeta{Format: f.Format, Duration: f.Duration}, FilePath: f.Key, Size: f.Size, Type: f.Type,
		FileURL: s.egress.FileURL(j, f), ID: fileID(j, i), Storage: f.Storage, Region: f.Region}
	if f.Width > 0 {
		v.Meta.Resolution = &resolution{Width: f.Width, Height: f.Height}
	}
	if f.Duration > 0 {
		// Bytes per second of the file, keyed by its height (or "audio"),
		// the documented ratio's inferred meaning.
		key := "audio"
		if f.Height > 0 {
			key = fmt.Sprint(f.Height)
		}
		v.Ratio = map[string]float64{key: float64(f.Size) / f.Duration}
	}
	if j.StoppedAt != nil {
		v.CreatedAt, v.UpdatedAt = restTime(*j.StoppedAt), restTime(*j.StoppedAt)
	}
	if !f.Start.IsZero() {
		st := restTime(f.Start)
		v.Start = &st
	}
	if !f.End.IsZero() {
		e := restTime(f.End)
		v.End = &e
	}
	return v
}

// fileID is a stable 24-hex id for a job's i-th file.
func fileID(j *state.Job, i int) string {
	if i == 0 {
		return j.ID
	}
	id := []byte(j.ID)
	if len(id) == 24 {
		// Vary the last nibbles by the file's number.
		suffix := fmt.Sprintf("%04x", i)
		copy(id[20:], suffix)
		return string(id)
	}
	return fmt.Sprintf("%s-%d", j.ID, i)
}

func jobStart(j *state.Job) *string {
	if j.StartedAt != nil {
		return restTimePtr(j.StartedAt)
	}
	t := restTime(j.CreatedAt)
	return &t
}

// webhookSummary is §11.5's delivery summary of a job's webhooks.
type webhookSummary struct {
	TotalCount   int                `json:"totalCount"`
	SuccessCount int                `json:"successCount"`
	Data         []state.JobWebhook `json:"data"`
}

// jobExtras reads what a job's view needs from other records: its
// webhooks' deliveries and, for participant and track recordings, the
// participant's name in the session.
func (s *Server) jobExtras(j *state.Job) (webhookSummary, string) {
	var w webhookSummary
	var name string
	s.node.FSM().Read(func(st *state.Store) {
		w.Data = st.JobWebhooks(j)
		if j.ParticipantID != "" {
			if ss, ok := st.Session(j.UserID, j.SessionID); ok {
				for _, p := range ss.Participants {
					if p.ParticipantID == j.ParticipantID {
						name = p.Name
					}
				}
			}
		}
	})
	w.TotalCount = len(w.Data)
	for _, d := range w.Data {
		if d.Success {
			w.SuccessCount++
		}
	}
	return w, name
}

type jobLinks struct {
	GetRoom    string `json:"get_room"`
	GetSession string `json:"get_session"`
}

func (s *Server) jobLinks(j *state.Job) jobLinks {
	return jobLinks{GetRoom: s.cfg.PublicURL + "/v2/rooms/" + j.RoomID, GetSession: s.cfg.PublicURL + "/v2/sessions/" + j.SessionID}
}

type recordingView struct {
	UserID    string          `json:"userId"`
	RoomID    string          `json:"roomId"`
	SessionID string          `json:"sessionId"`
	CreatedAt string          `json:"createdAt"`
	UpdatedAt string          `json:"updatedAt"`
	FileID    string          `json:"fileId,omitempty"`
	File      *fileView       `json:"file,omitempty"`
	ID        string          `json:"id"`
	Start     *string         `json:"start"`
	End       *string         `json:"end"`
	Status    egressapi.State `json:"status"`
	Error     string          `json:"error,omitempty"`
	Config    any             `json:"config,omitempty"`
	Webhook   webhookSummary  `json:"webhook"`
	Links     jobLinks        `json:"links"`
	EdgeID    string          `json:"edgeId,omitempty"`
	Duration  float64         `json:"duration"`
	Size      int64           `json:"size"`
}

type individualView struct {
	SessionID       string          `json:"sessionId"`
	ParticipantID   string          `json:"participantId"`
	Kind            string          `json:"kind"`
	FileFormat      string          `json:"fileFormat"`
	Start           *string         `json:"start"`
	End             *string         `json:"end"`
	Mode            string          `json:"mode"`
	Region          string          `json:"region"`
	Files           []fileView      `json:"files"`
	RoomID          string          `json:"roomId"`
	Webhook         webhookSummary  `json:"webhook"`
	ParticipantName string          `json:"participantName,omitempty"`
	ID              string          `json:"id"`
	Status          egressapi.State `json:"status"`
	Error           string          `json:"error,omitempty"`
	EdgeID          string          `json:"edgeId,omitempty"`
	Duration        float64         `json:"duration"`
	Size            int64           `json:"size"`
}

type outputView struct {
	StreamKey string          `json:"streamKey"`
	URL       string          `json:"url"`
	Status    egressapi.State `json:"status,omitempty"`
	Error     string          `json:"error,omitempty"`
}

type livestreamView struct {
	ID        string          `json:"id"`
	SessionID string          `json:"sessionId"`
	Outputs   []outputView    `json:"outputs"`
	Start     *string         `json:"start"`
	End       *string         `json:"end"`
	RoomID    string          `json:"roomId"`
	Status    egressapi.State `json:"status"`
	Error     string          `json:"error,omitempty"`
	Region    string          `json:"region,omitempty"`
	Webhook   webhookSummary  `json:"webhook"`
	Links     jobLinks        `json:"links"`
	EdgeID    string          `json:"edgeId,omitempty"`
	// Duration is how long the stream ran, in seconds. A livestream has no
	// size: it stores nothing, and bytes sent are not counted.
	Duration float64 `json:"duration"`
}

type hlsView struct {
	SessionID      string          `json:"sessionId"`
	Start          *string         `json:"start"`
	End            *string         `json:"end"`
	RoomID         string          `json:"roomId"`
	Duration       float64         `json:"duration"`
	Links          jobLinks        `json:"links"`
	DownstreamURL  string          `json:"downstreamUrl"`
	PlaybackHLSURL string          `json:"playbackHlsUrl"`
	LivestreamURL  string          `json:"livestreamUrl"`
	ID             string          `json:"id"`
	Status         egressapi.State `json:"status"`
	Playable       bool            `json:"playable"`
	Error          string          `json:"error,omitempty"`
	Mode           string          `json:"mode"`
	Quality        string          `json:"quality"`
	Orientation    string          `json:"orientation"`
	Webhook        webhookSummary  `json:"webhook"`
	EdgeID         string          `json:"edgeId,omitempty"`
	// File is the MP4 of the stream when it was started with recording enabled.
	File *fileView `json:"file,omitempty"`
}

type mergeView struct {
	ID        string           `json:"id"`
	Channel1  []state.MergeRef `json:"channel1"`
	Channel2  []state.MergeRef `json:"channel2"`
	Start     *string          `json:"start"`
	End       *string          `json:"end,omitempty"`
	Status    string           `json:"status"`
	MeetingID string           `json:"meetingId"`
	SessionID string           `json:"sessionId"`
	Error     string           `json:"message,omitempty"`
	File      *fileView        `json:"file,omitempty"`
	EdgeID    string           `json:"edgeId,omitempty"`
}

func (s *Server) jobView(j *state.Job) any {
	wh, name := s.jobExtras(j)
	switch j.Kind {
	case egressapi.KindComposite:
		v := recordingView{UserID: j.UserID, RoomID: j.RoomID, SessionID: j.SessionID, CreatedAt: restTime(j.CreatedAt), UpdatedAt: restTime(j.UpdatedAt),
			ID: j.ID, Start: jobStart(j), End: restTimePtr(j.StoppedAt), Status: j.State, Error: j.Error, Config: j.Config, Webhook: wh, Links: s.jobLinks(j),
			EdgeID: j.EdgeID, Duration: j.Duration, Size: j.Size}
		if len(j.Files) > 0 && j.State == egressapi.StateStopped {
			f := s.fileViewOf(j, 0, j.Files[0])
			v.File, v.FileID = &f, f.ID
		}
		return v
	case egressapi.KindParticipant, egressapi.KindTrack:
		v := individualView{SessionID: j.SessionID, ParticipantID: j.ParticipantID, Kind: "audio_video", FileFormat: j.FileFormat, Start: jobStart(j),
			End: restTimePtr(j.StoppedAt), Mode: "participant", Region: j.Region, Files: []fileView{}, RoomID: j.RoomID, Webhook: wh, ParticipantName: name, ID: j.ID, Status: j.State, Error: j.Error,
			EdgeID: j.EdgeID, Duration: j.Duration, Size: j.Size}
		if j.Kind == egressapi.KindTrack {
			v.Kind, v.Mode = j.TrackKind, "track"
		}
		for i, f := range j.Files {
			fv := s.fileViewOf(j, i, f)
			fv.LegacyID, fv.UserID = fv.ID, j.UserID
			v.Files = append(v.Files, fv)
		}
		return v
	case egressapi.KindRTMP:
		v := livestreamView{ID: j.ID, SessionID: j.SessionID, Outputs: []outputView{}, Start: jobStart(j), End: restTimePtr(j.StoppedAt), RoomID: j.RoomID,
			Status: j.State, Error: j.Error, Region: j.Region, Webhook: wh, Links: s.jobLinks(j), EdgeID: j.EdgeID, Duration: j.Duration}
		for i, o := range j.Outputs {
			ov := outputView{StreamKey: o.StreamKey, URL: o.URL}
			if i < len(j.OutputStatus) {
				ov.Status, ov.Error = j.OutputStatus[i].State, j.OutputStatus[i].Error
			}
			v.Outputs = append(v.Outputs, ov)
		}
		return v
	case egressapi.KindHLS:
		return s.hlsView(j)
	case egressapi.KindMerge:
		return s.mergeView(j)
	}
	return nil
}

func (s *Server) hlsView(j *state.Job) hlsView {
	v := hlsView{SessionID: j.SessionID, Start: jobStart(j), End: restTimePtr(j.StoppedAt), RoomID: j.RoomID, Duration: j.Duration, Links: s.jobLinks(j),
		DownstreamURL: j.PlaybackURL, PlaybackHLSURL: j.PlaybackURL, LivestreamURL: j.LivestreamURL, ID: j.ID, Status: j.State, Playable: j.Playable,
		Error: j.Error, Mode: j.Config.Mode, Quality: j.Config.Quality, Orientation: j.Config.Orientation, EdgeID: j.EdgeID}
	v.Webhook, _ = s.jobExtras(j)
	if len(j.Files) > 0 && j.State == egressapi.StateStopped {
		f := s.fileViewOf(j, 0, j.Files[0])
		v.File = &f
	}
	return v
}

func (s *Server) mergeView(j *state.Job) mergeView {
	v := mergeView{ID: j.ID, Channel1: orEmpty(j.Channel1), Channel2: orEmpty(j.Channel2), Start: jobStart(j), End: restTimePtr(j.StoppedAt),
		MeetingID: j.RoomID, SessionID: j.SessionID, EdgeID: j.EdgeID}
	switch j.State {
	case egressapi.StateStopped:
		v.Status = "completed"
	case egressapi.StateFailed:
		v.Status, v.Error = "failed", j.Error
	default:
		v.Status = "running"
	}
	if len(j.Files) > 0 && j.State == egressapi.StateStopped {
		f := s.fileViewOf(j, 0, j.Files[0])
		if f.Type == "" {
			f.Type = "audio"
		}
		v.File = &f
	}
	return v
}

func asFieldError(err error, target **egressapi.FieldError) bool { return errors.As(err, target) }
