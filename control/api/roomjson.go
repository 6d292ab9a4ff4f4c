package api

import (
	"strconv"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/jsonappend"
)

// Rooms are what the API answers most (created, fetched, listed twenty to
// a page), and encoding/json's reflection over a roomView was a fifth of
// a list page's CPU. The common room — no autoClose/autoStart/composition
// config, no pin — is appended directly, byte for byte what encoding/json
// writes for it (TestRoomJSONMatchesEncodingJSON); any other room, and any
// string that needs escaping, goes through encoding/json.

// appendRoom appends room r as encoding/json writes s.roomView(r, withUser),
// straight from the stored row: a list page no longer builds twenty views
// (each with two timestamp strings, a links and a user struct and a link
// string) only to append them.
func (s *Server) appendRoom(w *jsonBuf, b []byte, r *state.Room, withUser bool) []byte {
	if r.AutoCloseConfig != nil || r.AutoStartConfig != nil || r.MultiComposition != nil || !r.Pin.Empty() {
		v := s.roomView(r, withUser)
		return w.Marshal(b, &v)
	}
	b = append(b, `{"roomId":`...)
	b = w.String(b, r.RoomID)
	if r.CustomRoomID != "" {
		b = append(b, `,"customRoomId":`...)
		b = w.String(b, r.CustomRoomID)
	}
	if withUser {
		b = append(b, `,"user":{"email":"","name":"","discontinuedReason":null,"id":`...)
		b = w.String(b, r.UserID)
		b = append(b, '}')
	} else if r.UserID != "" {
		b = append(b, `,"userId":`...)
		b = w.String(b, r.UserID)
	}
	b = append(b, `,"disabled":`...)
	b = strconv.AppendBool(b, r.Disabled)
	b = append(b, `,"createdAt":"`...)
	b = appendRESTTime(b, r.CreatedAt)
	b = append(b, `","updatedAt":"`...)
	b = appendRESTTime(b, r.UpdatedAt)
	b = append(b, `","id":`...)
	b = w.String(b, r.ID)
	if h := r.Webhook; h != nil {
		b = append(b, `,"webhook":{"endPoint":`...)
		b = w.String(b, h.EndPoint)
		if len(h.Events) > 0 {
			b = append(b, `,"events":`...)
			b = w.Strings(b, h.Events)
		}
		b = append(b, '}')
	}
	if r.GeoFence != "" {
		b = append(b, `,"geoFence":`...)
		b = w.String(b, r.GeoFence)
	}
	if len(r.AllowedParticipantIDs) > 0 {
		b = append(b, `,"allowedParticipantIds":`...)
		b = w.Strings(b, r.AllowedParticipantIDs)
	}
	if r.MaxParticipants != 0 {
		b = append(b, `,"maxParticipants":`...)
		b = strconv.AppendInt(b, int64(r.MaxParticipants), 10)
	}
	if r.RequireSSO {
		b = append(b, `,"requireSSO":true`...)
	}
	b = append(b, `,"links":{"get_room":`...)
	b = w.Concat(b, s.roomsURL, r.RoomID)
	b = append(b, `,"get_session":`...)
	b = w.String(b, s.sessionsURL)
	return append(b, "}}"...)
}

// appendRoomsPage appends a room list page as c.JSON(fiber.Map{"pageInfo":
// info, "data": views}) writes it (map keys sorted: data first), views
// being the rooms' roomView(r, true).
func (s *Server) appendRoomsPage(w *jsonBuf, b []byte, info pageInfo, rooms []*state.Room) []byte {
	b = append(b, `{"data":[`...)
	for i, r := range rooms {
		if i > 0 {
			b = append(b, ',')
		}
		b = s.appendRoom(w, b, r, true)
	}
	b = append(b, `],"pageInfo":{"currentPage":`...)
	b = strconv.AppendInt(b, int64(info.CurrentPage), 10)
	b = append(b, `,"perPage":`...)
	b = strconv.AppendInt(b, int64(info.PerPage), 10)
	b = append(b, `,"lastPage":`...)
	b = strconv.AppendInt(b, int64(info.LastPage), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(info.Total), 10)
	return append(b, "}}"...)
}

// jsonBuf appends rooms; the embedded Writer's Err is the first encoding
// error (encoding/json's, for a value it refuses), after which the bytes
// are not to be sent.
type jsonBuf struct{ jsonappend.Writer }

// sendRoom answers one room as c.JSON(s.roomView(r, withUser)) would.
func (s *Server) sendRoom(c *fiber.Ctx, r *state.Room, withUser bool) error {
	return sendAppended(c, func(w *jsonBuf, b []byte) []byte { return s.appendRoom(w, b, r, withUser) })
}

// sendRoomsPage answers a list page as c.JSON(fiber.Map{"pageInfo": info,
// "data": views}) would.
func (s *Server) sendRoomsPage(c *fiber.Ctx, info pageInfo, rooms []*state.Room) error {
	return sendAppended(c, func(w *jsonBuf, b []byte) []byte { return s.appendRoomsPage(w, b, info, rooms) })
}

// Room answers are appended into a pooled scratch buffer, which fasthttp's
// Response.SetBody copies into its own pooled body buffer, so the scratch
// goes back at once. A fresh buffer per answer was ~4 % of what a leader
// allocates per room create (docs/benchmarks.md, "Less allocation on the leader's HTTP path").
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledScratch keeps the buffer of an unusually large answer (a page
// of long rooms) out of the pool.
const maxPooledScratch = 64 << 10

// sendAppended answers what appendBody appends, unless appending failed.
func sendAppended(c *fiber.Ctx, appendBody func(w *jsonBuf, b []byte) []byte) error {
	bp := scratchPool.Get().(*[]byte)
	var w jsonBuf
	body := appendBody(&w, (*bp)[:0])
	if w.Err == nil {
		c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
		c.Response().SetBody(body)
	}
	if cap(body) <= maxPooledScratch {
		*bp = body[:0]
		scratchPool.Put(bp)
	}
	return w.Err
}
