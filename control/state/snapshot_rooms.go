package state

import (
	"strconv"

	"github.com/meridian-video/meridian/shared/jsonappend"
)

// Rooms are most of a large snapshot (a million rooms is ~450 MB of JSON),
// and encoding/json spends most of Persist's CPU reflecting over them and
// allocating a buffer per row. appendRoom writes the same bytes
// json.Marshal writes for a *Room (TestAppendRoomMatchesEncodingJSON holds
// it to that, including escapes and omitempty) into one reused buffer.
// Anything it does not spell out itself is handed to encoding/json.

// rowBuf is the reused buffer one row is written into; the first
// encoding/json error sticks (no stored room can produce one).
type rowBuf struct {
	b []byte
	jsonappend.Writer
}

func (w *rowBuf) room(r *Room) []byte {
	w.b = w.appendRoom(w.b[:0], r)
	return w.b
}

func (w *rowBuf) appendRoom(b []byte, r *Room) []byte {
	b = append(b, `{"id":`...)
	b = w.String(b, r.ID)
	b = append(b, `,"roomId":`...)
	b = w.String(b, r.RoomID)
	if r.CustomRoomID != "" {
		b = append(b, `,"customRoomId":`...)
		b = w.String(b, r.CustomRoomID)
	}
	b = append(b, `,"userId":`...)
	b = w.String(b, r.UserID)
	b = append(b, `,"apiKey":`...)
	b = w.String(b, r.APIKey)
	b = append(b, `,"disabled":`...)
	b = strconv.AppendBool(b, r.Disabled)
	if r.Webhook != nil {
		b = append(b, `,"webhook":{"endPoint":`...)
		b = w.String(b, r.Webhook.EndPoint)
		if len(r.Webhook.Events) > 0 {
			b = append(b, `,"events":`...)
			b = w.Strings(b, r.Webhook.Events)
		}
		b = append(b, '}')
	}
	if r.AutoCloseConfig != nil {
		b = append(b, `,"autoCloseConfig":`...)
		b = w.Marshal(b, r.AutoCloseConfig)
	}
	if len(r.AutoStartConfig) > 0 {
		b = append(b, `,"autoStartConfig":`...)
		b = w.Marshal(b, r.AutoStartConfig)
	}
	if len(r.MultiComposition) > 0 {
		b = append(b, `,"multiComposition":`...)
		b = w.Marshal(b, r.MultiComposition)
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
	b = append(b, `,"pin":{`...)
	if len(r.Pin.Regions) > 0 {
		b = append(b, `"regions":`...)
		b = w.Strings(b, r.Pin.Regions)
	}
	if len(r.Pin.Jurisdictions) > 0 {
		if len(r.Pin.Regions) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"jurisdictions":`...)
		b = w.Strings(b, r.Pin.Jurisdictions)
	}
	b = append(b, '}')
	if r.RequireSSO {
		b = append(b, `,"requireSSO":true`...)
	}
	b = append(b, `,"createdAt":`...)
	b = w.Time(b, r.CreatedAt)
	b = append(b, `,"updatedAt":`...)
	b = w.Time(b, r.UpdatedAt)
	b = append(b, `,"createIndex":`...)
	b = strconv.AppendUint(b, r.CreateIndex, 10)
	b = append(b, `,"modifyIndex":`...)
	b = strconv.AppendUint(b, r.ModifyIndex, 10)
	return append(b, '}')
}
