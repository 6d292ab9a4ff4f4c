package state

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
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
	b   []byte
	err error
}

func (w *rowBuf) room(r *Room) []byte {
	w.b = w.appendRoom(w.b[:0], r)
	return w.b
}

func (w *rowBuf) appendRoom(b []byte, r *Room) []byte {
	b = append(b, `{"id":`...)
	b = w.appendString(b, r.ID)
	b = append(b, `,"roomId":`...)
	b = w.appendString(b, r.RoomID)
	if r.CustomRoomID != "" {
		b = append(b, `,"customRoomId":`...)
		b = w.appendString(b, r.CustomRoomID)
	}
	b = append(b, `,"userId":`...)
	b = w.appendString(b, r.UserID)
	b = append(b, `,"apiKey":`...)
	b = w.appendString(b, r.APIKey)
	b = append(b, `,"disabled":`...)
	b = strconv.AppendBool(b, r.Disabled)
	if r.Webhook != nil {
		b = append(b, `,"webhook":{"endPoint":`...)
		b = w.appendString(b, r.Webhook.EndPoint)
		if len(r.Webhook.Events) > 0 {
			b = append(b, `,"events":`...)
			b = w.appendStrings(b, r.Webhook.Events)
		}
		b = append(b, '}')
	}
	if r.AutoCloseConfig != nil {
		b = append(b, `,"autoCloseConfig":`...)
		b = w.appendMarshal(b, r.AutoCloseConfig)
	}
	if len(r.AutoStartConfig) > 0 {
		b = append(b, `,"autoStartConfig":`...)
		b = w.appendMarshal(b, r.AutoStartConfig)
	}
	if len(r.MultiComposition) > 0 {
		b = append(b, `,"multiComposition":`...)
		b = w.appendMarshal(b, r.MultiComposition)
	}
	if r.GeoFence != "" {
		b = append(b, `,"geoFence":`...)
		b = w.appendString(b, r.GeoFence)
	}
	if len(r.AllowedParticipantIDs) > 0 {
		b = append(b, `,"allowedParticipantIds":`...)
		b = w.appendStrings(b, r.AllowedParticipantIDs)
	}
	if r.MaxParticipants != 0 {
		b = append(b, `,"maxParticipants":`...)
		b = strconv.AppendInt(b, int64(r.MaxParticipants), 10)
	}
	b = append(b, `,"pin":{`...)
	if len(r.Pin.Regions) > 0 {
		b = append(b, `"regions":`...)
		b = w.appendStrings(b, r.Pin.Regions)
	}
	if len(r.Pin.Jurisdictions) > 0 {
		if len(r.Pin.Regions) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"jurisdictions":`...)
		b = w.appendStrings(b, r.Pin.Jurisdictions)
	}
	b = append(b, '}')
	if r.RequireSSO {
		b = append(b, `,"requireSSO":true`...)
	}
	b = append(b, `,"createdAt":`...)
	b = w.appendTime(b, r.CreatedAt)
	b = append(b, `,"updatedAt":`...)
	b = w.appendTime(b, r.UpdatedAt)
	b = append(b, `,"createIndex":`...)
	b = strconv.AppendUint(b, r.CreateIndex, 10)
	b = append(b, `,"modifyIndex":`...)
	b = strconv.AppendUint(b, r.ModifyIndex, 10)
	return append(b, '}')
}

// appendString writes s as a JSON string the way encoding/json does. Ids,
// keys and URLs are printable ASCII with nothing to escape; any other
// string goes through encoding/json (HTML-safe escapes, U+2028/U+2029,
// invalid UTF-8 replaced).
func (w *rowBuf) appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			return w.appendMarshal(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// plainJSON: the bytes encoding/json writes as they are in a string.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func (w *rowBuf) appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = w.appendString(b, s)
	}
	return append(b, ']')
}

// appendTime writes t as time.Time.MarshalJSON does (RFC 3339 with the
// fraction trimmed); years it refuses are left to it to refuse.
func (w *rowBuf) appendTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return w.appendMarshal(b, t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendMarshal is the slow path: encoding/json for one value.
func (w *rowBuf) appendMarshal(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil && w.err == nil {
		w.err = err
	}
	return append(b, j...)
}
