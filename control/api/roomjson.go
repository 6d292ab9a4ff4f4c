package api

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/shared/jsonappend"
)

// Rooms are what the API answers most (created, fetched, listed twenty to
// a page), and encoding/json's reflection over a roomView was a fifth of
// a list page's CPU. The common room — no autoClose/autoStart/composition
// config, no pin — is appended directly, byte for byte what encoding/json
// writes for it (TestRoomJSONMatchesEncodingJSON); any other room, and any
// string that needs escaping, goes through encoding/json.

// appendRoomView appends v's JSON to b.
func (w *jsonBuf) appendRoomView(b []byte, v *roomView) []byte {
	if v.AutoCloseConfig != nil || v.AutoStartConfig != nil || v.MultiComposition != nil || v.Pin != nil {
		return w.Marshal(b, v)
	}
	b = append(b, `{"roomId":`...)
	b = w.String(b, v.RoomID)
	if v.CustomRoomID != "" {
		b = append(b, `,"customRoomId":`...)
		b = w.String(b, v.CustomRoomID)
	}
	if v.UserID != "" {
		b = append(b, `,"userId":`...)
		b = w.String(b, v.UserID)
	}
	if u := v.User; u != nil {
		b = append(b, `,"user":{"email":`...)
		b = w.String(b, u.Email)
		b = append(b, `,"name":`...)
		b = w.String(b, u.Name)
		b = append(b, `,"discontinuedReason":`...)
		if u.DiscontinuedReason == nil {
			b = append(b, "null"...)
		} else {
			b = w.String(b, *u.DiscontinuedReason)
		}
		b = append(b, `,"id":`...)
		b = w.String(b, u.ID)
		b = append(b, '}')
	}
	b = append(b, `,"disabled":`...)
	b = strconv.AppendBool(b, v.Disabled)
	b = append(b, `,"createdAt":`...)
	b = w.String(b, v.CreatedAt)
	b = append(b, `,"updatedAt":`...)
	b = w.String(b, v.UpdatedAt)
	b = append(b, `,"id":`...)
	b = w.String(b, v.ID)
	if h := v.Webhook; h != nil {
		b = append(b, `,"webhook":{"endPoint":`...)
		b = w.String(b, h.EndPoint)
		if len(h.Events) > 0 {
			b = append(b, `,"events":`...)
			b = w.Strings(b, h.Events)
		}
		b = append(b, '}')
	}
	if v.GeoFence != "" {
		b = append(b, `,"geoFence":`...)
		b = w.String(b, v.GeoFence)
	}
	if len(v.AllowedParticipantIDs) > 0 {
		b = append(b, `,"allowedParticipantIds":`...)
		b = w.Strings(b, v.AllowedParticipantIDs)
	}
	if v.MaxParticipants != 0 {
		b = append(b, `,"maxParticipants":`...)
		b = strconv.AppendInt(b, int64(v.MaxParticipants), 10)
	}
	if v.RequireSSO {
		b = append(b, `,"requireSSO":true`...)
	}
	if l := v.Links; l != nil {
		b = append(b, `,"links":{"get_room":`...)
		b = w.String(b, l.GetRoom)
		b = append(b, `,"get_session":`...)
		b = w.String(b, l.GetSession)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendRoomsPage appends a room list page as c.JSON(fiber.Map{"pageInfo":
// info, "data": rooms}) writes it (map keys sorted: data first).
func (w *jsonBuf) appendRoomsPage(b []byte, info pageInfo, rooms []roomView) []byte {
	if rooms == nil {
		b = append(b, `{"data":null`...)
	} else {
		b = append(b, `{"data":[`...)
		for i := range rooms {
			if i > 0 {
				b = append(b, ',')
			}
			b = w.appendRoomView(b, &rooms[i])
		}
		b = append(b, ']')
	}
	b = append(b, `,"pageInfo":{"currentPage":`...)
	b = strconv.AppendInt(b, int64(info.CurrentPage), 10)
	b = append(b, `,"perPage":`...)
	b = strconv.AppendInt(b, int64(info.PerPage), 10)
	b = append(b, `,"lastPage":`...)
	b = strconv.AppendInt(b, int64(info.LastPage), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(info.Total), 10)
	return append(b, "}}"...)
}

// sendJSON answers body as c.JSON would (same Content-Type).
func sendJSON(c *fiber.Ctx, body []byte) error {
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	return c.Send(body)
}

// jsonBuf appends rooms; the embedded Writer's Err is the first encoding
// error (encoding/json's, for a value it refuses), after which the bytes
// are not to be sent.
type jsonBuf struct{ jsonappend.Writer }

// sendRoom answers one room as c.JSON(v) would.
func sendRoom(c *fiber.Ctx, v roomView) error {
	var w jsonBuf
	return w.send(c, w.appendRoomView(make([]byte, 0, 512), &v))
}

// sendRoomsPage answers a list page as c.JSON(fiber.Map{"pageInfo": info,
// "data": rooms}) would.
func sendRoomsPage(c *fiber.Ctx, info pageInfo, rooms []roomView) error {
	var w jsonBuf
	return w.send(c, w.appendRoomsPage(make([]byte, 0, 768*len(rooms)+128), info, rooms))
}

// send answers body unless appending it failed.
func (w *jsonBuf) send(c *fiber.Ctx, body []byte) error {
	if w.Err != nil {
		return w.Err
	}
	return sendJSON(c, body)
}
