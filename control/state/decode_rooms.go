package state

import (
	"encoding/json"
	"strconv"
	"time"
)

// Every node decodes every room create twice over (the command in Apply,
// and on the node that answers, the result), and encoding/json's
// reflection was a third of the FSM's CPU per create. A command or result
// is written by encoding/json (json.Marshal on the proposer; appendRoom
// for results): fixed key order, no whitespace, omitempty fields left out.
// The decoders here accept exactly that shape, with plain ASCII strings
// and integer numbers, and decode it to what encoding/json would; any
// other input (escapes, non-ASCII, another key order or case, fields they
// do not spell out, numbers with fractions, null) goes to encoding/json.
// So both paths agree on everything the fast one accepts
// (TestFastRoomDecodeMatchesEncodingJSON, FuzzFastRoomDecode), and
// replicas of different builds decode a log entry alike.

// fastDecoder is a command or result that can decode its usual encoding without
// encoding/json (decodeJSON tries it first).
type fastDecoder interface {
	decodeFast(b []byte) bool
}

func (c *CreateRoom) decodeFast(b []byte) bool {
	p := fastJSON{b: b}
	return p.lit(`{"room":`) && p.room(&c.Room) && p.lit(`}`) && p.end()
}

func (c *CreateRoomResult) decodeFast(b []byte) bool {
	p := fastJSON{b: b}
	var r Room
	if p.lit(`{"room":`) && p.room(&r) && p.lit(`,"created":`) && p.boolean(&c.Created) && p.lit(`}`) && p.end() {
		c.Room = &r
		return true
	}
	return false
}

// decodeFast reads a room as appendRoom writes it (a snapshot's rows).
func (r *Room) decodeFast(b []byte) bool {
	p := fastJSON{b: b}
	return p.room(r) && p.end()
}

// decodeJSON decodes b into v as json.Unmarshal would: by v's fast
// decoder when it has one and b has the usual shape, else by encoding/json
// (from a zero v: a failed fast decode may have set fields).
func decodeJSON[T any](b []byte, v *T) error {
	if d, ok := any(v).(fastDecoder); ok && d.decodeFast(b) {
		return nil
	}
	var zero T
	*v = zero
	return json.Unmarshal(b, v)
}

// DecodeCreateRoomResult decodes the result of a CmdCreateRoom as
// json.Unmarshal would.
func DecodeCreateRoomResult(b []byte) (*CreateRoomResult, error) {
	var res CreateRoomResult
	if err := decodeJSON(b, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// fastJSON reads the strict shape above; every method reports whether
// the input matched, and the caller gives up at the first mismatch.
type fastJSON struct {
	b []byte
	i int
}

func (p *fastJSON) end() bool { return p.i == len(p.b) }

// lit consumes s exactly, if it comes next (an optional field's key is
// tried with it too).
func (p *fastJSON) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str reads a string of printable ASCII. The escapes json.Marshal writes
// in such a string are understood (\", \\, and \u0026, \u003c, \u003e
// for the HTML-safe &, <, > of webhook URLs); any other escape is left to
// encoding/json.
func (p *fastJSON) str(dst *string) bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	var buf []byte // only once an escape is met
	from := p.i + 1
	for j := from; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			if buf == nil {
				*dst = string(p.b[from:j])
			} else {
				*dst = string(append(buf, p.b[from:j]...))
			}
			p.i = j + 1
			return true
		case c == '\\':
			var r byte
			switch e := p.b[j+1:]; {
			case len(e) >= 1 && (e[0] == '"' || e[0] == '\\'):
				r = e[0]
			case len(e) >= 5 && string(e[:5]) == "u0026":
				r = '&'
			case len(e) >= 5 && string(e[:5]) == "u003c":
				r = '<'
			case len(e) >= 5 && string(e[:5]) == "u003e":
				r = '>'
			default:
				return false
			}
			buf = append(append(buf, p.b[from:j]...), r)
			if r == '"' || r == '\\' {
				j++
			} else {
				j += 5
			}
			from = j + 1
		case c < 0x20 || c >= 0x80:
			return false
		}
	}
	return false
}

// plainOr reads a string: one without escapes into raw, uncopied (the
// caller copies it), any other into dst as str does.
func (p *fastJSON) plainOr(raw *[]byte, dst *string) bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			*raw = p.b[p.i+1 : j : j]
			p.i = j + 1
			return true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return p.str(dst)
		}
	}
	return false
}

// strs reads an array of such strings; [] is an empty, non-nil slice, as
// encoding/json makes it.
func (p *fastJSON) strs(dst *[]string) bool {
	if !p.lit(`[`) {
		return false
	}
	out := []string{}
	if p.lit(`]`) {
		*dst = out
		return true
	}
	for {
		var s string
		if !p.str(&s) {
			return false
		}
		out = append(out, s)
		if p.lit(`]`) {
			*dst = out
			return true
		}
		if !p.lit(`,`) {
			return false
		}
	}
}

func (p *fastJSON) boolean(dst *bool) bool {
	switch {
	case p.lit(`true`):
		*dst = true
	case p.lit(`false`):
		*dst = false
	default:
		return false
	}
	return true
}

// number reads an integer in JSON's grammar (0 or [1-9][0-9]*, an
// optional minus sign where signed) as strconv parses it for
// encoding/json; a fraction, an exponent or an overflow is left to it.
func (p *fastJSON) number(signed bool) (string, bool) {
	j := p.i
	if signed && j < len(p.b) && p.b[j] == '-' {
		j++
	}
	d := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == d || (j-d > 1 && p.b[d] == '0') || j < len(p.b) && (p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E') {
		return "", false
	}
	s := string(p.b[p.i:j])
	p.i = j
	return s, true
}

func (p *fastJSON) uint64(dst *uint64) bool {
	s, ok := p.number(false)
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	*dst = v
	return err == nil
}

func (p *fastJSON) int(dst *int) bool {
	s, ok := p.number(true)
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(s, 10, strconv.IntSize)
	*dst = int(v)
	return err == nil
}

// time reads a string without escapes and hands it, quotes included, to
// time.Time's UnmarshalJSON, as encoding/json does.
func (p *fastJSON) time(dst *time.Time) bool {
	start := p.i
	var s string
	if !p.str(&s) {
		return false
	}
	return dst.UnmarshalJSON(p.b[start:p.i]) == nil
}

// room reads a room as json.Marshal writes one (see appendRoom), without
// autoCloseConfig, autoStartConfig and multiComposition.
func (p *fastJSON) room(r *Room) bool {
	// The three ids are read without copying and stored as one string: a
	// stored room holds one object for them instead of three (fewer objects
	// for the collector to mark, one allocation instead of three).
	var id, roomID, custom []byte
	if !(p.lit(`{"id":`) && p.plainOr(&id, &r.ID) && p.lit(`,"roomId":`) && p.plainOr(&roomID, &r.RoomID)) {
		return false
	}
	if p.lit(`,"customRoomId":`) && !p.plainOr(&custom, &r.CustomRoomID) {
		return false
	}
	var buf [96]byte
	all := string(append(append(append(buf[:0], id...), roomID...), custom...))
	if id != nil {
		r.ID, all = all[:len(id)], all[len(id):]
	}
	if roomID != nil {
		r.RoomID, all = all[:len(roomID)], all[len(roomID):]
	}
	if custom != nil {
		r.CustomRoomID = all
	}
	if !(p.lit(`,"userId":`) && p.str(&r.UserID) && p.lit(`,"apiKey":`) && p.str(&r.APIKey) && p.lit(`,"disabled":`) && p.boolean(&r.Disabled)) {
		return false
	}
	if p.lit(`,"webhook":{"endPoint":`) {
		w := &RoomWebhook{}
		if !p.str(&w.EndPoint) || (p.lit(`,"events":`) && !p.strs(&w.Events)) || !p.lit(`}`) {
			return false
		}
		r.Webhook = w
	}
	if p.lit(`,"geoFence":`) && !p.str(&r.GeoFence) {
		return false
	}
	if p.lit(`,"allowedParticipantIds":`) && !p.strs(&r.AllowedParticipantIDs) {
		return false
	}
	if p.lit(`,"maxParticipants":`) && !p.int(&r.MaxParticipants) {
		return false
	}
	if !p.lit(`,"pin":{`) {
		return false
	}
	regions := p.lit(`"regions":`)
	if regions && !p.strs(&r.Pin.Regions) {
		return false
	}
	if regions && p.lit(`,"jurisdictions":`) || !regions && p.lit(`"jurisdictions":`) {
		if !p.strs(&r.Pin.Jurisdictions) {
			return false
		}
	}
	if !p.lit(`}`) {
		return false
	}
	if p.lit(`,"requireSSO":`) && !p.boolean(&r.RequireSSO) {
		return false
	}
	return p.lit(`,"createdAt":`) && p.time(&r.CreatedAt) && p.lit(`,"updatedAt":`) && p.time(&r.UpdatedAt) &&
		p.lit(`,"createIndex":`) && p.uint64(&r.CreateIndex) && p.lit(`,"modifyIndex":`) && p.uint64(&r.ModifyIndex) && p.lit(`}`)
}
