package api

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/ids"
)

func (s *Server) sessionRoutes(r fiber.Router) {
	r.Get("/sessions", s.listSessions)
	r.Post("/sessions/end", s.endSession)
	r.Post("/sessions/participants/remove", s.removeParticipant)
	r.Get("/sessions/:sessionId", s.getSession)
	r.Get("/sessions/:sessionId/participants", s.sessionParticipants)
	r.Get("/sessions/:sessionId/participants/active", s.activeParticipants)
	r.Get("/sessions/:sessionId/participants/:participantId", s.sessionParticipant)
	r.Get("/sessions/:sessionId/stats", s.sessionStats)
	r.Get("/sessions/:sessionId/participant/:participantId/stats", s.participantStats)
}

type timelogView struct {
	Start string  `json:"start"`
	End   *string `json:"end"`
}

type participantView struct {
	DocID         string        `json:"_id,omitempty"`
	ParticipantID string        `json:"participantId"`
	Name          string        `json:"name"`
	Timelog       []timelogView `json:"timelog"`
	// Extras VideoSDK shows for active participants.
	Events *struct {
		Mic              []any `json:"mic"`
		Webcam           []any `json:"webcam"`
		ScreenShare      []any `json:"screenShare"`
		ScreenShareAudio []any `json:"screenShareAudio"`
	} `json:"events,omitempty"`
	Mode string `json:"mode,omitempty"`
}

type sessionLinks struct {
	GetRoom            string `json:"get_room,omitempty"`
	GetSession         string `json:"get_session"`
	GetAllParticipants string `json:"get_all_participants,omitempty"`
}

type sessionView struct {
	ID             string            `json:"id"`
	LegacyID       string            `json:"_id,omitempty"`
	APIKey         string            `json:"apiKey,omitempty"`
	UserID         string            `json:"userId,omitempty"`
	RoomID         string            `json:"roomId"`
	CustomRoomID   string            `json:"customRoomId,omitempty"`
	Start          string            `json:"start"`
	End            *string           `json:"end"`
	Participants   []participantView `json:"participants"`
	ActiveDuration float64           `json:"activeDuration"`
	ChatLink       *string           `json:"chatLink"`
	Status         string            `json:"status"`
	Region         string            `json:"region,omitempty"`
	Links          sessionLinks      `json:"links"`
}

func (s *Server) sessionView(ss *state.Session, parts []*state.SessionParticipant, active bool) sessionView {
	v := sessionView{ID: ss.ID, UserID: ss.UserID, RoomID: ss.RoomID, CustomRoomID: ss.CustomRoomID, Start: restTime(ss.Start), End: restTimePtr(ss.End),
		Status: ss.Status(), Region: ss.Region, Participants: []participantView{},
		Links: sessionLinks{GetRoom: s.cfg.PublicURL + "/v2/rooms/" + ss.RoomID, GetSession: s.cfg.PublicURL + "/v2/sessions/" + ss.ID}}
	end := s.cfg.Now()
	if ss.End != nil {
		end = *ss.End
	}
	v.ActiveDuration = math.Round(end.Sub(ss.Start).Seconds()*1000) / 1000
	if active {
		v.LegacyID, v.APIKey = ss.ID, ss.APIKey
		v.Links.GetAllParticipants = s.cfg.PublicURL + "/v2/sessions/" + ss.ID + "/participants"
	}
	for _, p := range parts {
		v.Participants = append(v.Participants, participantViewOf(p, active))
	}
	return v
}

func participantViewOf(p *state.SessionParticipant, extras bool) participantView {
	pv := participantView{DocID: p.DocID, ParticipantID: p.ParticipantID, Name: p.Name, Timelog: make([]timelogView, len(p.Timelog))}
	for i, t := range p.Timelog {
		pv.Timelog[i] = timelogView{Start: restTime(t.Start), End: restTimePtr(t.End)}
	}
	if extras {
		pv.Events = &struct {
			Mic              []any `json:"mic"`
			Webcam           []any `json:"webcam"`
			ScreenShare      []any `json:"screenShare"`
			ScreenShareAudio []any `json:"screenShareAudio"`
		}{[]any{}, []any{}, []any{}, []any{}}
		pv.Mode = "SEND_AND_RECV"
	}
	return pv
}

// findSession loads a session of the caller's project and enforces room scope.
func (s *Server) findSession(c *fiber.Ctx, id string) (*state.Session, error) {
	return s.loadSession(c, id, func(st *state.Store, userID string) *state.Session {
		ss, _ := st.Session(userID, id)
		return ss
	})
}

// loadSession reads a session with load (all of it, or a page of its
// participants), enforces room scope, and tells a session the retention
// policy removed from one that never existed.
func (s *Server) loadSession(c *fiber.Ctx, id string, load func(st *state.Store, userID string) *state.Session) (*state.Session, error) {
	if _, err := ids.ParseDocID(id); err != nil {
		return nil, badRequest(fmt.Sprintf("sessionId %q must be 24 lowercase hex characters", truncateForMsg(id)))
	}
	p := principal(c)
	var (
		ss   *state.Session
		room *state.Room
		tomb *state.Tombstone
	)
	if err := s.readOrCatchUp(c, func(st *state.Store) bool {
		ss = load(st, p.Key.UserID)
		if ss != nil {
			room, _ = st.Room(p.Key.UserID, ss.RoomDocID)
		} else {
			tomb, _ = st.Removed(p.Key.UserID, state.KindSession, id)
		}
		return ss != nil || tomb != nil
	}); err != nil {
		return nil, err
	}
	if gone := removedByRetention(p, tomb); gone != nil {
		return nil, gone
	}
	if ss == nil {
		return nil, notFound(fmt.Sprintf("session %q not found", id))
	}
	if room != nil {
		if err := scopeCheck(p, room); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

func truncateForMsg(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (s *Server) listSessions(c *fiber.Ctx) error {
	p := principal(c)
	pg, err := parsePage(c, 20)
	if err != nil {
		return err
	}
	f := state.SessionFilter{UserID: p.Key.UserID, Status: c.Query("status")}
	if f.Status != "" && f.Status != "ongoing" && f.Status != "ended" {
		return badRequest(`query parameter "status" must be "ongoing" or "ended"`)
	}
	for _, q := range []struct {
		name string
		dst  **time.Time
	}{{"startDate", &f.StartAfter}, {"endDate", &f.StartBefore}} {
		if raw := c.Query(q.name); raw != "" {
			ms, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || ms < 0 {
				return badRequest(fmt.Sprintf("query parameter %q must be epoch milliseconds", q.name))
			}
			t := time.UnixMilli(ms)
			*q.dst = &t
		}
	}
	ref := c.Query("roomId")
	if ref == "" {
		ref = c.Query("customRoomId")
	}
	if ref == "" {
		ref = c.Query("query")
	}
	var (
		items   []*state.Session
		total   int
		missing bool
	)
	if err := s.read(c, func(st *state.Store) {
		if ref != "" {
			room, ok := st.Room(p.Key.UserID, ref)
			if !ok {
				missing = true
				return
			}
			f.RoomDocID = room.ID
		}
		if p.Claims.RoomID == "" {
			items, total = st.SessionsPage(f, pg.window())
			return
		}
		// A room-scoped token sees its room's sessions only.
		items, total = scopedSessions(st, p, f, pg)
	}); err != nil {
		return err
	}
	if missing {
		return notFound(fmt.Sprintf("room %q not found", ref))
	}
	data := make([]sessionView, len(items))
	for i, ss := range items {
		data[i] = s.sessionView(ss, ss.Participants, false)
	}
	return c.JSON(fiber.Map{"pageInfo": pageInfoOf(total, pg), "data": data})
}

// scopedSessions lists the sessions of the rooms a room-scoped token names
// (its roomId, customRoomId or document id: one room, unless ids of
// different rooms collide).
func scopedSessions(st *state.Store, p *auth.Principal, f state.SessionFilter, pg page) ([]*state.Session, int) {
	rooms := st.RoomsByRef(p.Key.UserID, p.Claims.RoomID, true)
	if f.RoomDocID != "" {
		rooms = slices.DeleteFunc(rooms, func(r *state.Room) bool { return r.ID != f.RoomDocID })
	}
	switch len(rooms) {
	case 0:
		return nil, 0
	case 1:
		f.RoomDocID = rooms[0].ID
		return st.SessionsPage(f, pg.window())
	}
	var all []*state.Session
	for _, r := range rooms {
		f.RoomDocID = r.ID
		all = append(all, st.Sessions(f)...)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].Start.Equal(all[j].Start) {
			return all[i].Start.After(all[j].Start)
		}
		return all[i].CreateIndex > all[j].CreateIndex
	})
	items, info := paginate(all, pg)
	return items, info.Total
}

func (s *Server) getSession(c *fiber.Ctx) error {
	ss, err := s.findSession(c, c.Params("sessionId"))
	if err != nil {
		return err
	}
	return c.JSON(s.sessionView(ss, ss.Participants, false))
}

func (s *Server) sessionParticipants(c *fiber.Ctx) error {
	ss, info, err := s.participantsPage(c, false)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pageInfo": info, "data": s.sessionView(ss, ss.Participants, false)})
}

func (s *Server) activeParticipants(c *fiber.Ctx) error {
	ss, info, err := s.participantsPage(c, true)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"pageInfo": info, "data": []sessionView{s.sessionView(ss, ss.Participants, true)}})
}

// participantsPage reads a session with one page of its participants
// (those in the session now, with active); the others are not copied.
func (s *Server) participantsPage(c *fiber.Ctx, active bool) (*state.Session, pageInfo, error) {
	pg, err := parsePage(c, 20)
	if err != nil {
		// The session is checked first, as before paging existed.
		if _, ferr := s.findSession(c, c.Params("sessionId")); ferr != nil {
			return nil, pageInfo{}, ferr
		}
		return nil, pageInfo{}, err
	}
	var total int
	ss, err := s.loadSession(c, c.Params("sessionId"), func(st *state.Store, userID string) *state.Session {
		ss, n, _ := st.SessionParticipants(userID, c.Params("sessionId"), active, pg.window())
		total = n
		return ss
	})
	if err != nil {
		return nil, pageInfo{}, err
	}
	return ss, pageInfoOf(total, pg), nil
}

func (s *Server) sessionParticipant(c *fiber.Ctx) error {
	ss, err := s.findSession(c, c.Params("sessionId"))
	if err != nil {
		return err
	}
	pid := c.Params("participantId")
	for _, p := range ss.Participants {
		if p.ParticipantID == pid {
			return c.JSON(participantViewOf(p, true))
		}
	}
	return notFound(fmt.Sprintf("participant %q not found in session %q", truncateForMsg(pid), ss.ID))
}

type endSessionRequest struct {
	RoomID        *string `json:"roomId"`
	SessionID     *string `json:"sessionId"`
	VsdkForceKill *bool   `json:"vsdkForceKill"`
	IgnoreClosed  *bool   `json:"ignoreClosed"`
}

func (s *Server) endSession(c *fiber.Ctx) error {
	p := principal(c)
	var req endSessionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.RoomID == nil || *req.RoomID == "" {
		return invalidField("roomId", "is required")
	}
	room, err := s.findRoomToWrite(c, *req.RoomID)
	if err != nil {
		return err
	}
	cmd := state.EndSession{UserID: p.Key.UserID, RoomRef: room.RoomID, Reason: state.ReasonEndedByAPI, At: s.cfg.Now().UTC()}
	if req.SessionID != nil && *req.SessionID != "" {
		if _, err := ids.ParseDocID(*req.SessionID); err != nil {
			return invalidField("sessionId", "must be 24 lowercase hex characters")
		}
		// The session must be one of the room the request names (which the
		// token's scope was checked against): the command ends a session
		// by id, and the room's participants are the ones sent away.
		ss, err := s.findSession(c, *req.SessionID)
		if err != nil {
			return err
		}
		if ss.RoomDocID != room.ID {
			return notFound(fmt.Sprintf("session %q is not a session of room %q", ss.ID, truncateForMsg(*req.RoomID)))
		}
		cmd.SessionID = *req.SessionID
	}
	if cmd.IDs, err = s.newIDs(64); err != nil {
		return err
	}
	raw, err := s.apply(c, state.CmdEndSession, cmd)
	if err != nil {
		if se := (*state.Error)(nil); cmd.SessionID != "" && asStateErr(err, &se) && se.Code == state.CodeNotFound {
			// Named a session the retention policy removed: say so, as
			// every read of it does.
			var tomb *state.Tombstone
			s.node.FSM().Read(func(st *state.Store) { tomb, _ = st.Removed(p.Key.UserID, state.KindSession, cmd.SessionID) })
			if gone := removedByRetention(p, tomb); gone != nil {
				return gone
			}
		}
		if req.IgnoreClosed != nil && *req.IgnoreClosed {
			if se := (*state.Error)(nil); asStateErr(err, &se) && se.Code == state.CodeInvalid {
				return c.JSON(fiber.Map{"message": se.Message})
			}
		}
		return err
	}
	var before state.Session
	if err := json.Unmarshal(raw, &before); err != nil {
		return err
	}
	s.closeRoomOnEdges(c, room)
	return c.JSON(s.sessionView(&before, before.Participants, false))
}

type removeParticipantRequest struct {
	ParticipantID *string `json:"participantId"`
	RoomID        *string `json:"roomId"`
	SessionID     *string `json:"sessionId"`
}

func (s *Server) removeParticipant(c *fiber.Ctx) error {
	p := principal(c)
	var req removeParticipantRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.ParticipantID == nil || *req.ParticipantID == "" {
		return invalidField("participantId", "is required")
	}
	var ss *state.Session
	switch {
	case req.SessionID != nil && *req.SessionID != "":
		var err error
		if ss, err = s.findSession(c, *req.SessionID); err != nil {
			return err
		}
		if req.RoomID != nil && *req.RoomID != "" {
			room, err := s.findRoomToWrite(c, *req.RoomID)
			if err != nil {
				return err
			}
			if ss.RoomDocID != room.ID {
				return notFound(fmt.Sprintf("session %q is not a session of room %q", ss.ID, truncateForMsg(*req.RoomID)))
			}
		}
	case req.RoomID != nil && *req.RoomID != "":
		room, err := s.findRoomToWrite(c, *req.RoomID)
		if err != nil {
			return err
		}
		s.node.FSM().Read(func(st *state.Store) { ss, _ = st.OngoingSession(room.ID) })
		if ss == nil {
			return badRequest(fmt.Sprintf("room %q has no ongoing session", *req.RoomID))
		}
	default:
		return badRequest(`one of "roomId" or "sessionId" is required`)
	}
	if ss.End != nil {
		return badRequest(fmt.Sprintf("session %q has already ended", ss.ID))
	}
	var target *state.SessionParticipant
	for _, sp := range ss.Participants {
		if sp.ParticipantID == *req.ParticipantID && sp.Active() {
			target = sp
		}
	}
	if target == nil {
		return notFound(fmt.Sprintf("participant %q is not in session %q", truncateForMsg(*req.ParticipantID), ss.ID))
	}
	evIDs, err := s.newIDs(3)
	if err != nil {
		return err
	}
	// The kick is authoritative in the replicated state at once; the edge is
	// told to disconnect, and its own leave report is then a no-op.
	if _, err := s.apply(c, state.CmdParticipantLeave, state.ParticipantLeave{EventID: "kick-" + evIDs[0], RoomID: ss.RoomID, ParticipantID: target.ParticipantID,
		Reason: state.ReasonRemoved, At: s.cfg.Now().UTC(), IDs: evIDs[1:]}); err != nil {
		return err
	}
	if s.edges != nil {
		if err := s.edges.RemoveParticipant(c.UserContext(), target.EdgeID, ss.RoomID, target.ParticipantID, "removed"); err != nil {
			s.log.Warn("edge did not confirm participant removal", "edge", target.EdgeID, "room", ss.RoomID, "participant", target.ParticipantID, "err", err)
		}
	}
	var after *state.Session
	s.node.FSM().Read(func(st *state.Store) { after, _ = st.Session(p.Key.UserID, ss.ID) })
	if after == nil {
		after = ss
	}
	return c.JSON(s.sessionView(after, after.Participants, false))
}

// newIDs draws n fresh document ids (event ids for webhook deliveries).
func (s *Server) newIDs(n int) ([]string, error) { return ids.NewDocIDs(s.cfg.Rand, n) }

// statsEntry is one sampling interval in the VideoSDK stats shape.
type statsEntry struct {
	Time                    string       `json:"time"`
	RecvAudioPacketLost     int64        `json:"recvAudioPacketLost"`
	RecvVideoPacketLost     int64        `json:"recvVideoPacketLost"`
	SendAudioPacketLost     int64        `json:"sendAudioPacketLost"`
	SendVideoPacketLost     int64        `json:"sendVideoPacketLost"`
	AverageAudioRtt         float64      `json:"averageAudioRtt"`
	AverageVideoRtt         float64      `json:"averageVideoRtt"`
	AverageAudioJitter      float64      `json:"averageAudioJitter"`
	AverageVideoJitter      float64      `json:"averageVideoJitter"`
	AverageSendAudioBitrate float64      `json:"averageSendAudioBitrate"`
	AverageSendVideoBitrate float64      `json:"averageSendVideoBitrate"`
	AverageRecvAudioBitrate float64      `json:"averageRecvAudioBitrate"`
	AverageRecvVideoBitrate float64      `json:"averageRecvVideoBitrate"`
	QualityScore            qualityScore `json:"qualityScore"`
}

type qualityScore struct {
	Audio float64 `json:"audio"`
	Video float64 `json:"video"`
}

// An entry is computed from the directions a participant uses: a direction
// (send or receive, audio or video) is in use when it carried packets.
// Send figures are the edge's measurements of what the participant
// publishes (loss and jitter of the packets arriving, the round trip of its
// publisher connection); receive figures come from the participant's
// receiver reports (loss, jitter, round trip) on what the edge forwards to
// it. Per participant and kind:
//
//   - averageAudioRtt/averageVideoRtt: the mean round trip over the
//     directions in use that have one;
//   - averageAudioJitter/averageVideoJitter: the mean jitter over the
//     directions in use;
//   - qualityScore: the worse MOS of the directions in use (as the edge's
//     connection-quality score takes the worst stream), 0 only when the
//     participant neither sent nor received that kind.
//
// The session entry of an interval averages per participant, each figure
// over the participants to which it applies: round trips over those with
// one, jitter over those using the kind, averageSend*/averageRecv*Bitrate
// over those sending/receiving that kind (the average sender's or
// receiver's bitrate, as VideoSDK's session figures are per-participant
// averages and not room totals), qualityScore over those with a score.
// Packet losses are summed.

// mediaInUse reports whether a direction carried media.
func mediaInUse(m state.MediaSample) bool { return m.Packets > 0 || m.Bitrate > 0 }

// meanOf accumulates a mean (0 of nothing).
type meanOf struct {
	sum float64
	n   int
}

func (m *meanOf) add(x float64) { m.sum += x; m.n++ }

func (m meanOf) value() float64 {
	if m.n == 0 {
		return 0
	}
	return m.sum / float64(m.n)
}

// kindFigures are one participant's round trip, jitter and score for one
// kind, from its send and receive directions.
func kindFigures(send, recv state.MediaSample) (rtt, jitter, score float64) {
	var rtts, jits meanOf
	dirs := make([]state.MediaSample, 0, 2)
	for _, m := range []state.MediaSample{send, recv} {
		if !mediaInUse(m) {
			continue
		}
		dirs = append(dirs, m)
		jits.add(m.JitterMs)
		if m.RTTMs > 0 {
			rtts.add(m.RTTMs)
		}
	}
	rtt = rtts.value()
	for _, m := range dirs {
		if m.RTTMs == 0 {
			// Not timed yet on this connection: the other's round trip
			// (the same client, the same path) is the better guess.
			m.RTTMs = rtt
		}
		if q := mos(m); score == 0 || q < score {
			score = q
		}
	}
	return rtt, jits.value(), score
}

// participantEntry is one participant's sample as a stats entry.
func participantEntry(x state.StatsSample) statsEntry {
	e := statsEntry{
		Time:                    restTime(x.Time),
		RecvAudioPacketLost:     x.RecvAudio.PacketsLost,
		RecvVideoPacketLost:     x.RecvVideo.PacketsLost,
		SendAudioPacketLost:     x.SendAudio.PacketsLost,
		SendVideoPacketLost:     x.SendVideo.PacketsLost,
		AverageSendAudioBitrate: x.SendAudio.Bitrate,
		AverageSendVideoBitrate: x.SendVideo.Bitrate,
		AverageRecvAudioBitrate: x.RecvAudio.Bitrate,
		AverageRecvVideoBitrate: x.RecvVideo.Bitrate,
	}
	var qa, qv float64
	e.AverageAudioRtt, e.AverageAudioJitter, qa = kindFigures(x.SendAudio, x.RecvAudio)
	e.AverageVideoRtt, e.AverageVideoJitter, qv = kindFigures(x.SendVideo, x.RecvVideo)
	e.QualityScore = qualityScore{Audio: round2(qa), Video: round2(qv)}
	return e
}

// aggregate combines the samples of one interval (one per participant) into
// the session's entry; see above for which participants each figure
// averages.
func aggregate(samples []state.StatsSample) statsEntry {
	var e statsEntry
	if len(samples) == 0 {
		return e
	}
	e.Time = restTime(samples[0].Time)
	var artt, vrtt, ajit, vjit, sab, svb, rab, rvb, qa, qv meanOf
	for _, x := range samples {
		p := participantEntry(x)
		e.RecvAudioPacketLost += p.RecvAudioPacketLost
		e.RecvVideoPacketLost += p.RecvVideoPacketLost
		e.SendAudioPacketLost += p.SendAudioPacketLost
		e.SendVideoPacketLost += p.SendVideoPacketLost
		if p.AverageAudioRtt > 0 {
			artt.add(p.AverageAudioRtt)
		}
		if p.AverageVideoRtt > 0 {
			vrtt.add(p.AverageVideoRtt)
		}
		if mediaInUse(x.SendAudio) || mediaInUse(x.RecvAudio) {
			ajit.add(p.AverageAudioJitter)
		}
		if mediaInUse(x.SendVideo) || mediaInUse(x.RecvVideo) {
			vjit.add(p.AverageVideoJitter)
		}
		if mediaInUse(x.SendAudio) {
			sab.add(x.SendAudio.Bitrate)
		}
		if mediaInUse(x.SendVideo) {
			svb.add(x.SendVideo.Bitrate)
		}
		if mediaInUse(x.RecvAudio) {
			rab.add(x.RecvAudio.Bitrate)
		}
		if mediaInUse(x.RecvVideo) {
			rvb.add(x.RecvVideo.Bitrate)
		}
		if p.QualityScore.Audio > 0 {
			qa.add(p.QualityScore.Audio)
		}
		if p.QualityScore.Video > 0 {
			qv.add(p.QualityScore.Video)
		}
	}
	e.AverageAudioRtt, e.AverageVideoRtt = artt.value(), vrtt.value()
	e.AverageAudioJitter, e.AverageVideoJitter = ajit.value(), vjit.value()
	e.AverageSendAudioBitrate, e.AverageSendVideoBitrate = sab.value(), svb.value()
	e.AverageRecvAudioBitrate, e.AverageRecvVideoBitrate = rab.value(), rvb.value()
	e.QualityScore = qualityScore{Audio: round2(qa.value()), Video: round2(qv.value())}
	return e
}

// mos maps loss, jitter and RTT of one stream to a 1–5 MOS-like score using a
// simplified E-model: the effective latency and loss reduce an R factor.
func mos(m state.MediaSample) float64 {
	if m.Packets == 0 && m.Bitrate == 0 {
		return 0
	}
	loss := 0.0
	if total := m.Packets + m.PacketsLost; total > 0 {
		loss = float64(m.PacketsLost) / float64(total) * 100
	}
	latency := m.RTTMs/2 + 2*m.JitterMs + 10
	r := 93.2
	if latency < 160 {
		r -= latency / 40
	} else {
		r -= (latency - 120) / 10
	}
	r -= 2.5 * loss
	if r < 0 {
		r = 0
	}
	score := 1 + 0.035*r + 0.000007*r*(r-60)*(100-r)
	return math.Max(1, math.Min(5, score))
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func groupByTime(samples []state.StatsSample) [][]state.StatsSample {
	groups := map[int64][]state.StatsSample{}
	for _, x := range samples {
		k := x.Time.Unix()
		groups[k] = append(groups[k], x)
	}
	keys := make([]int64, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := make([][]state.StatsSample, len(keys))
	for i, k := range keys {
		out[i] = groups[k]
	}
	return out
}

func (s *Server) sessionStats(c *fiber.Ctx) error {
	ss, err := s.findSession(c, c.Params("sessionId"))
	if err != nil {
		return err
	}
	var samples []state.StatsSample
	var legs []state.LegSample
	s.node.FSM().Read(func(st *state.Store) {
		samples = st.SessionStats(ss.ID)
		legs = st.SessionLegStats(ss.ID)
	})
	entries := []statsEntry{}
	for _, g := range groupByTime(samples) {
		entries = append(entries, aggregate(g))
	}
	return c.JSON(fiber.Map{"sessionId": ss.ID, "meetingId": ss.RoomID, "duration": durationOf(ss, s.cfg.Now()), "stats": entries,
		"cascadeLegs": cascadeLegViews(legs)})
}

// cascadeLegView summarises one relay leg between two edges (a Meridian
// addition to the stats shape): its latest bitrate and totals.
type cascadeLegView struct {
	EdgeID     string  `json:"edgeId"`
	PeerEdgeID string  `json:"peerEdgeId"`
	Direction  string  `json:"direction"`
	Bitrate    float64 `json:"bitrate"`
	Packets    uint64  `json:"packets"`
	Bytes      uint64  `json:"bytes"`
	RTTMs      float64 `json:"rttMs,omitempty"`
	Tracks     int     `json:"tracks"`
	FirstSeen  string  `json:"firstSeen"`
	LastSeen   string  `json:"lastSeen"`
}

func cascadeLegViews(legs []state.LegSample) []cascadeLegView {
	out := []cascadeLegView{}
	idx := map[[3]string]int{}
	for _, l := range legs {
		k := [3]string{l.EdgeID, l.PeerEdgeID, l.Direction}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, cascadeLegView{EdgeID: l.EdgeID, PeerEdgeID: l.PeerEdgeID, Direction: l.Direction, FirstSeen: restTime(l.Time)})
			i = len(out) - 1
		}
		v := &out[i]
		v.Bitrate, v.Packets, v.Bytes, v.RTTMs, v.Tracks, v.LastSeen = math.Round(l.Bitrate), l.Packets, l.Bytes, l.RTTMs, l.Tracks, restTime(l.Time)
	}
	return out
}

func durationOf(ss *state.Session, now time.Time) float64 {
	end := now
	if ss.End != nil {
		end = *ss.End
	}
	return math.Round(end.Sub(ss.Start).Seconds()*1000) / 1000
}

func (s *Server) participantStats(c *fiber.Ctx) error {
	ss, err := s.findSession(c, c.Params("sessionId"))
	if err != nil {
		return err
	}
	pid := c.Params("participantId")
	var part *state.SessionParticipant
	for _, p := range ss.Participants {
		if p.ParticipantID == pid {
			part = p
		}
	}
	if part == nil {
		return notFound(fmt.Sprintf("participant %q not found in session %q", truncateForMsg(pid), ss.ID))
	}
	var samples []state.StatsSample
	s.node.FSM().Read(func(st *state.Store) { samples = st.SessionStats(ss.ID) })
	entries := []statsEntry{}
	resolution := []map[string]any{}
	for _, x := range samples {
		if x.ParticipantID != pid {
			continue
		}
		entries = append(entries, participantEntry(x))
		if h := x.SendVideo.Height; h > 0 {
			row := map[string]any{"180": 0, "360": 0, "720": 0, "1080": 0, "1440": 0, "2160": 0, "time": restTime(x.Time)}
			row[resolutionBucket(h)] = 1
			resolution = append(resolution, row)
		}
	}
	var dur float64
	now := s.cfg.Now()
	for _, t := range part.Timelog {
		end := now
		if t.End != nil {
			end = *t.End
		}
		dur += end.Sub(t.Start).Seconds()
	}
	unknown := map[string]string{"country": "unknown", "city": "unknown", "region": "unknown"}
	return c.JSON(fiber.Map{"sessionId": ss.ID, "meetingId": ss.RoomID, "participantId": pid, "participantName": part.Name,
		"duration":   math.Round(dur*1000) / 1000,
		"deviceInfo": fiber.Map{"deviceName": "unknown", "deviceVersion": "unknown"}, "sdkInfo": fiber.Map{"sdkName": "meridian", "sdkVersion": "1"},
		"location": unknown, "network": fiber.Map{"asn": "unknown", "org": "unknown"}, "stats": entries, "resolutionUsage": resolution})
}

func resolutionBucket(h int) string {
	for _, b := range []int{180, 360, 720, 1080, 1440} {
		if h <= b {
			return strconv.Itoa(b)
		}
	}
	return "2160"
}
