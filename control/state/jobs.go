package state

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// Egress jobs (recordings, RTMP out, HLS, merges) are replicated records:
// any control node answers for them, and a job's webhooks are enqueued by
// the same command that changes its state, so a status change and its
// event cannot be separated by a crash or a leader change. The media work
// runs on an edge; the edge's status reports arrive through its ordered
// event batch and are applied only when their Seq is newer.

const tJobs = "jobs" // *Job

// Commands 50-59 belong to egress jobs.
const (
	CmdCreateJob CommandType = 50
	CmdJobStatus CommandType = 51
	CmdFailJobs  CommandType = 52
	CmdAbortJob  CommandType = 53
	CmdDeleteJob CommandType = 54
)

// MergeRef is one entry of a merge channel as the caller asked for it.
type MergeRef struct {
	ParticipantID string `json:"participantId"`
	RecordingID   string `json:"recordingId"`
}

// Job is one egress job.
type Job struct {
	ID     string         `json:"id"`
	Kind   egressapi.Kind `json:"kind"`
	UserID string         `json:"userId"`
	APIKey string         `json:"apiKey"`
	// RoomID is the room's roomId (xxxx-xxxx-xxxx); SessionID the session
	// the job records.
	RoomID    string `json:"roomId"`
	SessionID string `json:"sessionId,omitempty"`
	EdgeID    string `json:"edgeId,omitempty"`
	// Auto marks a job started by the room's autoStartConfig.
	Auto  bool            `json:"auto,omitempty"`
	State egressapi.State `json:"state"`
	Error string          `json:"error,omitempty"`

	// What was asked.
	Config        egressapi.Config       `json:"config,omitzero"`
	ParticipantID string                 `json:"participantId,omitempty"`
	TrackKind     string                 `json:"trackKind,omitempty"`
	FileFormat    string                 `json:"fileFormat,omitempty"`
	Outputs       []egressapi.RTMPOutput `json:"outputs,omitempty"`
	Channel1      []MergeRef             `json:"channel1,omitempty"`
	Channel2      []MergeRef             `json:"channel2,omitempty"`
	WebhookURL    string                 `json:"webhookUrl,omitempty"`
	DirPath       string                 `json:"dirPath,omitempty"`
	// HLS: the unguessable directory in HLS URLs and the URLs themselves.
	HLSPath       string `json:"hlsPath,omitempty"`
	PlaybackURL   string `json:"playbackUrl,omitempty"`
	LivestreamURL string `json:"livestreamUrl,omitempty"`

	// What the edge reported.
	StartedAt    *time.Time               `json:"startedAt,omitempty"`
	StoppedAt    *time.Time               `json:"stoppedAt,omitempty"`
	Size         int64                    `json:"size,omitempty"`
	Duration     float64                  `json:"duration,omitempty"`
	Files        []egressapi.File         `json:"files,omitempty"`
	OutputStatus []egressapi.OutputStatus `json:"outputStatus,omitempty"`
	Storage      string                   `json:"storage,omitempty"`
	Region       string                   `json:"region,omitempty"`
	Playable     bool                     `json:"playable,omitempty"`
	Seq          uint64                   `json:"seq,omitempty"`
	// Fired lists the lifecycle webhooks already enqueued (each fires once).
	Fired []string `json:"fired,omitempty"`

	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	DeletedAt   *time.Time `json:"deletedAt,omitempty"`
	CreateIndex uint64     `json:"createIndex"`
	ModifyIndex uint64     `json:"modifyIndex"`
}

func (j *Job) clone() *Job {
	c := *j
	c.Outputs = append([]egressapi.RTMPOutput(nil), j.Outputs...)
	c.Channel1 = append([]MergeRef(nil), j.Channel1...)
	c.Channel2 = append([]MergeRef(nil), j.Channel2...)
	c.Files = append([]egressapi.File(nil), j.Files...)
	c.OutputStatus = append([]egressapi.OutputStatus(nil), j.OutputStatus...)
	c.Fired = append([]string(nil), j.Fired...)
	return &c
}

// Active reports whether the job may still change.
func (j *Job) Active() bool { return !j.State.Final() }

func (j *Job) fired(ev string) bool {
	for _, f := range j.Fired {
		if f == ev {
			return true
		}
	}
	return false
}

// CreateJob records a job before its edge is asked to run it. It is refused
// with a conflict when the room already runs a job of that kind for the
// same target (one composite, one RTMP and one HLS job per room; one
// participant recording per participant; one track recording per
// participant and track kind).
type CreateJob struct {
	Job Job `json:"job"`
}

// JobStatus applies an edge's report of a job. FileURLs are the download
// URLs of Status.Files (signed by the proposer; the state machine cannot
// sign), used in the stopped webhooks.
type JobStatus struct {
	EdgeID   string           `json:"edgeId"`
	Status   egressapi.Status `json:"status"`
	FileURLs []string         `json:"fileUrls,omitempty"`
	At       time.Time        `json:"at"`
}

// FailJobs ends jobs that can no longer finish (their edge was lost, or it
// could not be reached to start them) with a reason.
type FailJobs struct {
	IDs    []string  `json:"ids"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// AbortJob removes a job its edge refused to start: it never ran, sent no
// webhook, and the caller got the edge's error.
type AbortJob struct {
	ID string `json:"id"`
}

// DeleteJob soft-deletes an ended job of a project.
type DeleteJob struct {
	UserID string         `json:"userId"`
	ID     string         `json:"id"`
	Kind   egressapi.Kind `json:"kind"`
	At     time.Time      `json:"at"`
}

var jobTables = []*memdb.TableSchema{
	table(tJobs,
		ix("id", true, always(func(j *Job) []byte { return keyOf(j.ID) })),
		// Lists: a project's undeleted jobs of a kind, and those of a room,
		// a session, a participant or a state; oldest first (lists walk them
		// backwards). Each holds exactly the rows of one list filter, which
		// jobCounters counts, so a page walks only its own rows.
		ix("project", false, listedJob(func(j *Job) []byte { return keyOf(j.UserID, string(j.Kind), j.CreateIndex) })),
		ix("room", false, listedJob(func(j *Job) []byte { return keyOf(j.UserID, string(j.Kind), j.RoomID, j.CreateIndex) })),
		ix("status", false, listedJob(func(j *Job) []byte { return keyOf(j.UserID, string(j.Kind), string(j.State), j.CreateIndex) })),
		ix("listSession", false, func(j *Job) (bool, []byte) {
			return j.DeletedAt == nil && j.SessionID != "", keyOf(j.UserID, string(j.Kind), j.SessionID, j.CreateIndex)
		}),
		ix("participant", false, func(j *Job) (bool, []byte) {
			return j.DeletedAt == nil && j.ParticipantID != "", keyOf(j.UserID, string(j.Kind), j.ParticipantID, j.CreateIndex)
		}),
		// A session's jobs, deleted ones included (SessionJobs).
		ix("session", false, always(func(j *Job) []byte { return keyOf(j.SessionID, string(j.Kind), j.CreateIndex) })),
		// Jobs that may still change, by room and kind: stop routes find
		// the room's running job, and the edge-loss check walks them all.
		ix("active", false, func(j *Job) (bool, []byte) { return j.Active(), keyOf(j.RoomID, string(j.Kind), j.CreateIndex) })),
}

// listedJob keeps deleted jobs out of a list index.
func listedJob(f func(*Job) []byte) func(*Job) (bool, []byte) {
	return func(j *Job) (bool, []byte) { return j.DeletedAt == nil, f(j) }
}

// jobsCounter names the counter of one job list: a project's jobs of a kind
// (field ""), or those whose field (room, session, participant, state) has
// value. The value comes last, so any string keeps the name unambiguous.
func jobsCounter(userID string, kind egressapi.Kind, field, value string) string {
	if field == "" {
		return "jobs/" + userID + "/" + string(kind)
	}
	return "jobs/" + userID + "/" + string(kind) + "/" + field + "/" + value
}

// jobCounters lists the counters a job is in: one per list index it is in.
func jobCounters(j *Job) []string {
	if j == nil || j.DeletedAt != nil {
		return nil
	}
	out := []string{
		jobsCounter(j.UserID, j.Kind, "", ""),
		jobsCounter(j.UserID, j.Kind, "room", j.RoomID),
		jobsCounter(j.UserID, j.Kind, "state", string(j.State)),
	}
	if j.SessionID != "" {
		out = append(out, jobsCounter(j.UserID, j.Kind, "session", j.SessionID))
	}
	if j.ParticipantID != "" {
		out = append(out, jobsCounter(j.UserID, j.Kind, "participant", j.ParticipantID))
	}
	return out
}

// putJob stores a job version; old is the stored one it replaces (nil for
// a new job). The lists' counters move with the fields they count.
func (s *Store) putJob(old, j *Job) {
	if was, is := jobCounters(old), jobCounters(j); !slices.Equal(was, is) {
		s.recount(was, is)
	}
	s.put(tJobs, j)
}

func init() {
	for _, t := range jobTables {
		if err := t.Validate(); err != nil {
			panic("state: schema: " + err.Error())
		}
		dbSchema.Tables[t.Name] = t
	}
	register(CmdCreateJob, applyCreateJob)
	register(CmdJobStatus, applyJobStatus)
	register(CmdFailJobs, applyFailJobs)
	register(CmdAbortJob, applyAbortJob)
	register(CmdDeleteJob, applyDeleteJob)
}

func (s *Store) job(id string) *Job { return one[*Job](s, tJobs, "id", id) }

// sameTarget reports whether two jobs of a room would produce the same thing.
func sameTarget(a, b *Job) bool {
	if a.Kind != b.Kind || a.RoomID != b.RoomID {
		return false
	}
	switch a.Kind {
	case egressapi.KindParticipant:
		return a.ParticipantID == b.ParticipantID
	case egressapi.KindTrack:
		return a.ParticipantID == b.ParticipantID && a.TrackKind == b.TrackKind
	case egressapi.KindMerge:
		return false
	}
	return true
}

func applyCreateJob(s *Store, index uint64, c *CreateJob) (any, error) {
	j := c.Job
	switch {
	case j.ID == "" || j.UserID == "" || j.RoomID == "":
		return nil, errf(CodeInvalid, "a job needs an id, a project and a room")
	case s.job(j.ID) != nil:
		return nil, errf(CodeConflict, "job %q already exists", j.ID)
	case s.roomByRoomID(j.RoomID) == nil:
		return nil, errf(CodeNotFound, "room %q not found", j.RoomID)
	}
	for _, other := range all[*Job](s.iter(tJobs, "active", false, j.RoomID, string(j.Kind))) {
		if sameTarget(other, &j) {
			return nil, errf(CodeConflict, "%s already running in room %s (id %s); stop it first", describeKind(j.Kind), j.RoomID, other.ID)
		}
	}
	j.State = egressapi.StateStarting
	j.Seq, j.Fired, j.DeletedAt = 0, nil, nil
	j.UserID, j.APIKey, j.EdgeID = intern(j.UserID), intern(j.APIKey), intern(j.EdgeID)
	j.CreateIndex, j.ModifyIndex = index, index
	s.putJob(nil, &j)
	s.bump(tJobs, index)
	return j.clone(), nil
}

func describeKind(k egressapi.Kind) string {
	switch k {
	case egressapi.KindComposite:
		return "a recording is"
	case egressapi.KindParticipant:
		return "a recording of this participant is"
	case egressapi.KindTrack:
		return "a recording of this track is"
	case egressapi.KindRTMP:
		return "a livestream is"
	case egressapi.KindHLS:
		return "HLS is"
	}
	return "a job is"
}

func applyJobStatus(s *Store, index uint64, c *JobStatus) (any, error) {
	old := s.job(c.Status.ID)
	if old == nil {
		return nil, errf(CodeNotFound, "job %q not found", c.Status.ID)
	}
	st := c.Status
	// Stale or repeated reports change nothing; a job that ended here (edge
	// lost) stays ended.
	if st.Seq <= old.Seq || old.State.Final() || (c.EdgeID != "" && old.EdgeID != "" && c.EdgeID != old.EdgeID) {
		return old.clone(), nil
	}
	j := old.clone()
	j.State, j.Error, j.Seq = st.State, st.Error, st.Seq
	if !st.StartedAt.IsZero() {
		j.StartedAt = ptrTime(st.StartedAt.UTC())
	}
	if !st.StoppedAt.IsZero() {
		j.StoppedAt = ptrTime(st.StoppedAt.UTC())
	}
	j.Size, j.Duration = st.Size, st.Duration
	if st.Files != nil {
		j.Files = append([]egressapi.File(nil), st.Files...)
	}
	if st.Outputs != nil {
		j.OutputStatus = append([]egressapi.OutputStatus(nil), st.Outputs...)
	}
	if st.Storage != "" {
		j.Storage, j.Region = st.Storage, st.Region
	}
	j.Playable = j.Playable || st.Playable
	if j.SessionID == "" {
		j.SessionID = st.SessionID
	}
	if j.State.Final() && j.StoppedAt == nil {
		j.StoppedAt = ptrTime(c.At)
	}
	j.UpdatedAt, j.ModifyIndex = c.At, index
	s.fireJobEvents(index, j, c.At, c.FileURLs)
	s.putJob(old, j)
	s.bump(tJobs, index)
	return j.clone(), nil
}

func applyFailJobs(s *Store, index uint64, c *FailJobs) (any, error) {
	n := 0
	for _, id := range c.IDs {
		old := s.job(id)
		if old == nil || old.State.Final() {
			continue
		}
		j := old.clone()
		j.State, j.Error = egressapi.StateFailed, c.Reason
		j.StoppedAt = ptrTime(c.At)
		j.UpdatedAt, j.ModifyIndex = c.At, index
		s.fireJobEvents(index, j, c.At, nil)
		s.putJob(old, j)
		n++
	}
	if n > 0 {
		s.bump(tJobs, index)
	}
	return n, nil
}

func applyAbortJob(s *Store, index uint64, c *AbortJob) (any, error) {
	j := s.job(c.ID)
	if j == nil {
		return nil, nil
	}
	if j.Seq != 0 || len(j.Fired) > 0 {
		return nil, errf(CodeConflict, "job %q already ran; it can only be stopped", c.ID)
	}
	s.recount(jobCounters(j), nil)
	s.del(tJobs, j)
	s.bump(tJobs, index)
	return nil, nil
}

func applyDeleteJob(s *Store, index uint64, c *DeleteJob) (any, error) {
	old := s.job(c.ID)
	if old == nil || old.UserID != c.UserID || old.DeletedAt != nil || (c.Kind != "" && old.Kind != c.Kind) {
		return nil, errf(CodeNotFound, "%s %q not found", c.Kind.Noun(), c.ID)
	}
	if old.Active() {
		return nil, errf(CodeConflict, "%s %q is still %s; stop it before deleting it", c.Kind.Noun(), c.ID, old.State)
	}
	j := old.clone()
	j.DeletedAt = ptrTime(c.At)
	j.UpdatedAt, j.ModifyIndex = c.At, index
	s.putJob(old, j)
	s.bump(tJobs, index)
	return j.clone(), nil
}

// Lifecycle webhooks. A state reached fires the events of the states it
// implies that have not fired yet, in order (a job reported straight as
// stopped still sends stopping then stopped); failed fires only failed.
func jobEventNames(k egressapi.Kind) (starting, started, stopping, stopped, failed string) {
	switch k {
	case egressapi.KindComposite:
		return webhooks.EventRecordingStarting, webhooks.EventRecordingStarted, webhooks.EventRecordingStopping, webhooks.EventRecordingStopped, webhooks.EventRecordingFailed
	case egressapi.KindParticipant:
		return webhooks.EventParticipantRecordingStarting, webhooks.EventParticipantRecordingStarted, webhooks.EventParticipantRecordingStopping,
			webhooks.EventParticipantRecordingStopped, webhooks.EventParticipantRecordingFailed
	case egressapi.KindTrack:
		return webhooks.EventTrackRecordingStarting, webhooks.EventTrackRecordingStarted, webhooks.EventTrackRecordingStopping,
			webhooks.EventTrackRecordingStopped, webhooks.EventTrackRecordingFailed
	case egressapi.KindRTMP:
		return webhooks.EventLivestreamStarting, webhooks.EventLivestreamStarted, webhooks.EventLivestreamStopping, webhooks.EventLivestreamStopped, webhooks.EventLivestreamFailed
	case egressapi.KindHLS:
		return webhooks.EventHLSStarting, webhooks.EventHLSStarted, webhooks.EventHLSStopping, webhooks.EventHLSStopped, webhooks.EventHLSFailed
	case egressapi.KindMerge:
		return "", "", "", webhooks.EventMergeRecordingCompleted, webhooks.EventMergeRecordingFailed
	}
	return "", "", "", "", ""
}

func (s *Store) fireJobEvents(index uint64, j *Job, at time.Time, fileURLs []string) {
	starting, started, stopping, stopped, failed := jobEventNames(j.Kind)
	var seq []string
	switch j.State {
	case egressapi.StateStarting:
		seq = []string{starting}
	case egressapi.StateRunning:
		seq = []string{starting, started}
		if j.Kind == egressapi.KindHLS && j.Playable {
			seq = append(seq, webhooks.EventHLSPlayable)
		}
	case egressapi.StateStopping:
		seq = []string{stopping}
	case egressapi.StateStopped:
		seq = []string{stopping, stopped}
	case egressapi.StateFailed:
		seq = []string{failed}
	}
	r := s.roomByRoomID(j.RoomID)
	for _, ev := range seq {
		if ev == "" || j.fired(ev) {
			continue
		}
		j.Fired = append(j.Fired, ev)
		if r == nil {
			continue
		}
		data := jobEventData(j, ev, fileURLs)
		raw, err := json.Marshal(data)
		if err != nil {
			panic("state: marshal " + ev + " payload: " + err.Error())
		}
		s.enqueueRaw(index, r, j.SessionID, j.ID+"-"+ev, ev, at, raw, j.WebhookURL)
	}
}

func fileDetails(j *Job, urls []string) webhooks.FileDetails {
	var out webhooks.FileDetails
	for i, f := range j.Files {
		d := webhooks.FileDetail{FilePath: f.Key}
		if i < len(urls) {
			d.FileURL = urls[i]
		}
		out = append(out, d)
	}
	return out
}

// jobEventData is the documented payload of ev for j (videosdk-v2.md §11.3).
func jobEventData(j *Job, ev string, urls []string) any {
	m := webhooks.Meeting{MeetingID: j.RoomID, SessionID: j.SessionID}
	switch ev {
	case webhooks.EventRecordingStopped:
		d := webhooks.RecordingStopped{MeetingID: j.RoomID, SessionID: j.SessionID}
		if fd := fileDetails(j, urls); len(fd) > 0 {
			d.FilePath, d.FileURL = fd[0].FilePath, fd[0].FileURL
		}
		return d
	case webhooks.EventParticipantRecordingStarting, webhooks.EventParticipantRecordingStarted, webhooks.EventParticipantRecordingStopping:
		return webhooks.ParticipantRecording{MeetingID: j.RoomID, SessionID: j.SessionID, ParticipantID: j.ParticipantID, FileFormat: j.FileFormat}
	case webhooks.EventParticipantRecordingStopped:
		return webhooks.ParticipantRecordingStopped{MeetingID: j.RoomID, SessionID: j.SessionID, ParticipantID: j.ParticipantID, FileDetails: fileDetails(j, urls)}
	case webhooks.EventParticipantRecordingFailed:
		return webhooks.ParticipantRecordingFailed{MeetingID: j.RoomID, SessionID: j.SessionID, ParticipantID: j.ParticipantID}
	case webhooks.EventTrackRecordingStarting, webhooks.EventTrackRecordingStarted, webhooks.EventTrackRecordingStopping, webhooks.EventTrackRecordingFailed:
		return webhooks.TrackRecording{MeetingID: j.RoomID, SessionID: j.SessionID, ParticipantID: j.ParticipantID, Kind: j.TrackKind}
	case webhooks.EventTrackRecordingStopped:
		return webhooks.TrackRecordingStopped{MeetingID: j.RoomID, SessionID: j.SessionID, ParticipantID: j.ParticipantID, Kind: j.TrackKind, FileDetails: fileDetails(j, urls)}
	case webhooks.EventMergeRecordingCompleted:
		return webhooks.MergeRecordingCompleted{ID: j.ID, MeetingID: j.RoomID, SessionID: j.SessionID}
	case webhooks.EventMergeRecordingFailed:
		return webhooks.MergeRecordingFailed{ID: j.ID, MeetingID: j.RoomID, SessionID: j.SessionID, Message: j.Error}
	case webhooks.EventHLSStarted:
		return webhooks.HLSStarted{MeetingID: j.RoomID, SessionID: j.SessionID, PlaybackHLSURL: j.PlaybackURL, LivestreamURL: j.LivestreamURL, DownstreamURL: j.PlaybackURL}
	case webhooks.EventHLSPlayable:
		return webhooks.HLSPlayable{MeetingID: j.RoomID, SessionID: j.SessionID, PlaybackHLSURL: j.PlaybackURL, LivestreamURL: j.LivestreamURL, DownstreamURL: j.PlaybackURL}
	}
	return m
}

// Job returns a project's job (deleted jobs are gone).
func (s *Store) Job(userID, id string) (*Job, bool) {
	j := s.job(id)
	if j == nil || j.UserID != userID || j.DeletedAt != nil {
		return nil, false
	}
	return j.clone(), true
}

// JobByID returns any job, deleted or not (edges' reports, the control
// plane's own loops).
func (s *Store) JobByID(id string) (*Job, bool) {
	j := s.job(id)
	if j == nil {
		return nil, false
	}
	return j.clone(), true
}

// JobFilter selects a project's jobs of one kind for a list.
type JobFilter struct {
	UserID        string
	Kind          egressapi.Kind
	RoomID        string // the room's roomId
	SessionID     string
	ParticipantID string
	ID            string
	State         egressapi.State
}

// matches reports whether a job is in the list the filter selects.
func (f JobFilter) matches(j *Job) bool {
	return j.UserID == f.UserID && j.Kind == f.Kind && j.DeletedAt == nil &&
		(f.RoomID == "" || j.RoomID == f.RoomID) && (f.SessionID == "" || j.SessionID == f.SessionID) &&
		(f.ParticipantID == "" || j.ParticipantID == f.ParticipantID) && (f.ID == "" || j.ID == f.ID) &&
		(f.State == "" || j.State == f.State)
}

// JobsPage returns a page of matching jobs, newest first, and how many match.
// An id is a lookup. One filter (or none) has an index and a counter of its
// own: the page walks only its rows and the total is read. Filters together
// walk the narrowest one's rows (a session's, a room's, a participant's,
// then a state's) and count the matches there.
func (s *Store) JobsPage(f JobFilter, p Page) ([]*Job, int) {
	if f.ID != "" {
		j := s.job(f.ID)
		if j == nil || !f.matches(j) {
			return nil, 0
		}
		if p.Offset > 0 || p.Limit == 0 {
			return nil, 1
		}
		return []*Job{j.clone()}, 1
	}
	var lists []listFilter
	for _, l := range []struct{ index, field, value string }{{"listSession", "session", f.SessionID}, {"room", "room", f.RoomID},
		{"participant", "participant", f.ParticipantID}, {"status", "state", string(f.State)}} {
		if l.value != "" {
			lists = append(lists, listFilter{index: l.index, args: []any{f.UserID, string(f.Kind), l.value}, counter: jobsCounter(f.UserID, f.Kind, l.field, l.value)})
		}
	}
	if len(lists) == 0 {
		lists = append(lists, listFilter{index: "project", args: []any{f.UserID, string(f.Kind)}, counter: jobsCounter(f.UserID, f.Kind, "", "")})
	}
	rows, n := filteredPage(s, tJobs, lists, p, f.matches)
	return copyJobs(rows), n
}

// ActiveJobs lists the jobs of a room and kind that may still change,
// oldest first; with an empty room, every active job.
func (s *Store) ActiveJobs(roomID string, kind egressapi.Kind) []*Job {
	var args []any
	if roomID != "" {
		args = append(args, roomID)
		if kind != "" {
			args = append(args, string(kind))
		}
	}
	return copyJobs(all[*Job](s.iter(tJobs, "active", false, args...)))
}

// SessionJobs lists a session's jobs of a kind, oldest first.
func (s *Store) SessionJobs(sessionID string, kind egressapi.Kind) []*Job {
	return copyJobs(all[*Job](s.iter(tJobs, "session", false, sessionID, string(kind))))
}

func copyJobs(in []*Job) []*Job {
	out := make([]*Job, len(in))
	for i, j := range in {
		out[i] = j.clone()
	}
	return out
}

// jobsSnapshot writes the jobs table into a snapshot.
func jobsSnapshot(j *jsonWriter, s *Store) {
	array(j, "jobs", true, s.iter(tJobs, "id", false), same[*Job])
}

// jobsRestore reads the jobs field of a snapshot; ok is false for any other.
func jobsRestore(name string, dec *jsonStream, s *Store) (ok bool, err error) {
	if name != "jobs" {
		return false, nil
	}
	return true, rows(dec, func(j *Job) {
		j.UserID, j.APIKey, j.EdgeID = intern(j.UserID), intern(j.APIKey), intern(j.EdgeID)
		s.putJob(nil, j)
	})
}

// JobWebhook is one delivery of a job's webhooks (§11.5 summary).
type JobWebhook struct {
	Type    string `json:"type"`
	Success bool   `json:"success"`
}

// JobWebhooks lists the deliveries of a job's lifecycle webhooks, in
// enqueue order. Their ids all start with the delivery id prefix of
// "<job id>-" (enqueueRaw names a delivery after its event, fireJobEvents
// an event after its job), so they are a prefix walk of the id index, however long the room's log: a page
// of jobs reads each job's own few deliveries.
func (s *Store) JobWebhooks(j *Job) []JobWebhook {
	prefix := j.ID + "-"
	var own []*Delivery
	for _, d := range all[*Delivery](s.iter(tOutbox, "id", false, stringPrefix(deliveryIDPrefix(prefix)))) {
		// Exactly this job's ("<job id>-<event type>"): another job's id
		// may extend this one's with "-…" and share the prefix.
		if strings.HasPrefix(d.EventID, prefix) && d.EventID[len(prefix):] == d.EventType {
			own = append(own, d)
		}
	}
	slices.SortFunc(own, func(a, b *Delivery) int { // enqueue order
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Sub, b.Sub))
	})
	out := make([]JobWebhook, len(own))
	for i, d := range own {
		out[i] = JobWebhook{Type: d.EventType, Success: d.Status == DeliveryDelivered}
	}
	return out
}
