package state

import (
	"encoding/json"
	"sort"
	"time"
)

// RoomWebhook is the create-room `webhook` object.
type RoomWebhook struct {
	EndPoint string   `json:"endPoint"`
	Events   []string `json:"events,omitempty"`
}

// AutoCloseConfig is the create-room `autoCloseConfig` object.
type AutoCloseConfig struct {
	Type     string  `json:"type"`
	Duration float64 `json:"duration"`
}

// Room is a VideoSDK room. Rooms belong to a project (UserID); several API
// keys of one project see the same rooms.
type Room struct {
	ID                    string           `json:"id"`
	RoomID                string           `json:"roomId"`
	CustomRoomID          string           `json:"customRoomId,omitempty"`
	UserID                string           `json:"userId"`
	APIKey                string           `json:"apiKey"`
	Disabled              bool             `json:"disabled"`
	lastOrder             uint32           // derived, not persisted: see noteOrder
	Webhook               *RoomWebhook     `json:"webhook,omitempty"`
	AutoCloseConfig       *AutoCloseConfig `json:"autoCloseConfig,omitempty"`
	AutoStartConfig       json.RawMessage  `json:"autoStartConfig,omitempty"`
	MultiComposition      json.RawMessage  `json:"multiComposition,omitempty"`
	GeoFence              string           `json:"geoFence,omitempty"`
	AllowedParticipantIDs []string         `json:"allowedParticipantIds,omitempty"`
	MaxParticipants       int              `json:"maxParticipants,omitempty"`
	Pin                   PinPolicy        `json:"pin"`
	RequireSSO            bool             `json:"requireSSO,omitempty"` // participants sign in with the identity provider first
	CreatedAt             time.Time        `json:"createdAt"`
	UpdatedAt             time.Time        `json:"updatedAt"`
	CreateIndex           uint64           `json:"createIndex"`
	ModifyIndex           uint64           `json:"modifyIndex"`
}

func (r *Room) clone() *Room {
	c := *r
	if r.Webhook != nil {
		w := *r.Webhook
		w.Events = append([]string(nil), r.Webhook.Events...)
		c.Webhook = &w
	}
	if r.AutoCloseConfig != nil {
		a := *r.AutoCloseConfig
		c.AutoCloseConfig = &a
	}
	c.AllowedParticipantIDs = append([]string(nil), r.AllowedParticipantIDs...)
	c.Pin.Regions = append([]string(nil), r.Pin.Regions...)
	c.Pin.Jurisdictions = append([]string(nil), r.Pin.Jurisdictions...)
	return &c
}

// CreateRoom creates a room; with a CustomRoomID that the project already
// uses it returns the existing room instead (idempotent create).
type CreateRoom struct {
	Room Room `json:"room"`
}

// CreateRoomResult says whether the room was created.
type CreateRoomResult struct {
	Room    *Room `json:"room"`
	Created bool  `json:"created"`
}

// detach is the result with a room of its own: applyCreateRoom answers with
// the stored row, which a request only encodes (encodeResult), so the copy
// is made only where the result leaves the state machine as a value.
func (c *CreateRoomResult) detach() any {
	return &CreateRoomResult{Room: c.Room.clone(), Created: c.Created}
}

// DeactivateRoom disables a room for good and ends its ongoing session.
type DeactivateRoom struct {
	UserID string    `json:"userId"`
	RoomID string    `json:"roomId"`
	At     time.Time `json:"at"`
}

// SetRoomStatus is the legacy enable/disable switch.
type SetRoomStatus struct {
	UserID   string    `json:"userId"`
	RoomID   string    `json:"roomId"`
	Disabled bool      `json:"disabled"`
	At       time.Time `json:"at"`
}

func init() {
	register(CmdCreateRoom, applyCreateRoom)
	register(CmdDeactivateRoom, applyDeactivateRoom)
	register(CmdSetRoomStatus, func(s *Store, index uint64, c *SetRoomStatus) (any, error) {
		old, ok := s.lookupRoom(c.UserID, c.RoomID)
		if !ok {
			return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
		}
		r := old.clone()
		r.Disabled = c.Disabled
		r.UpdatedAt = c.At
		r.ModifyIndex = index
		s.putRoom(old, r)
		s.bump("rooms", index)
		return r.clone(), nil
	})
}

// Counter keys. A project's counters mirror the index prefixes its lists
// walk, so a list's total is one lookup.
func roomsCounter(userID string) string { return "rooms/" + userID }

const allRoomsCounter = "rooms"

func roomCounters(r *Room) []string {
	if r == nil {
		return nil
	}
	return []string{allRoomsCounter, roomsCounter(r.UserID)}
}

// putRoom stores a new room or a new version of one (old), keeping counters.
func (s *Store) putRoom(old, r *Room) {
	if old == nil {
		s.recount(nil, roomCounters(r))
	}
	r.Webhook = internWebhook(r.Webhook) // an edited copy shares again
	if v := s.rooms; v != nil {
		v.put(s.roomByID(r.ID), r)
	}
	s.put(tRooms, r)
}

func applyCreateRoom(s *Store, index uint64, c *CreateRoom) (any, error) {
	r := &c.Room // decoded for this application alone: it becomes the stored row
	if r.ID == "" || r.RoomID == "" || r.UserID == "" {
		return nil, errf(CodeInvalid, "room needs id, roomId and userId")
	}
	if r.CustomRoomID != "" {
		if old := s.roomByCustom(r.UserID, r.CustomRoomID); old != nil {
			return &CreateRoomResult{Room: old}, nil // detached by the FSM when it leaves as a value
		}
	}
	if s.roomByRoomID(r.RoomID) != nil {
		return nil, errf(CodeConflict, "room id %q already exists", r.RoomID)
	}
	if s.roomByID(r.ID) != nil {
		return nil, errf(CodeConflict, "room document %q already exists", r.ID)
	}
	r.CreateIndex, r.ModifyIndex = index, index
	r.intern()
	if r.Webhook != nil {
		s.ungone(r.UserID, r.Webhook.EndPoint) // configured again: try it again
	}
	s.putRoom(nil, r)
	s.bump("rooms", index)
	return &CreateRoomResult{Room: r, Created: true}, nil
}

// intern shares the strings rooms of a project repeat (the webhook config
// is shared by putRoom, which every stored room goes through).
func (r *Room) intern() {
	r.UserID, r.APIKey, r.GeoFence = intern(r.UserID), intern(r.APIKey), intern(r.GeoFence)
	r.Pin.Regions = internAll(r.Pin.Regions)
	r.Pin.Jurisdictions = internAll(r.Pin.Jurisdictions)
}

func applyDeactivateRoom(s *Store, index uint64, c *DeactivateRoom) (any, error) {
	old := s.roomByRoomID(c.RoomID)
	if old == nil || old.UserID != c.UserID {
		if s.roomByCustom(c.UserID, c.RoomID) != nil {
			return nil, errf(CodeInvalid, "deactivate takes the roomId, not the customRoomId %q", c.RoomID)
		}
		return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
	}
	r := old.clone()
	r.Disabled = true
	r.UpdatedAt = c.At
	r.ModifyIndex = index
	s.putRoom(old, r)
	s.bump("rooms", index)
	r = s.endOngoingSession(index, r, c.At, ReasonDeactivated)
	return r.clone(), nil
}

// lookupRoom resolves a roomId, customRoomId or document id within a project.
func (s *Store) lookupRoom(userID, ref string) (*Room, bool) {
	if r := s.roomByRoomID(ref); r != nil && r.UserID == userID {
		return r, true
	}
	if r := s.roomByCustom(userID, ref); r != nil {
		return r, true
	}
	if r := s.roomByID(ref); r != nil && r.UserID == userID {
		return r, true
	}
	return nil, false
}

// Room resolves a roomId, customRoomId or document id within a project.
func (s *Store) Room(userID, ref string) (*Room, bool) {
	r, ok := s.lookupRoom(userID, ref)
	if !ok {
		return nil, false
	}
	return r.clone(), true
}

// RoomByRoomID finds a room by its roomId regardless of project (edges, join).
func (s *Store) RoomByRoomID(roomID string) (*Room, bool) {
	r := s.roomByRoomID(roomID)
	if r == nil {
		return nil, false
	}
	return r.clone(), true
}

// RoomsByRef lists a project's rooms whose roomId or customRoomId (and the
// document id too, withDocID) equals ref, newest first: the exact-match
// `query` filter and a room-scoped token's view. At most three rooms.
func (s *Store) RoomsByRef(userID, ref string, withDocID bool) []*Room {
	var out []*Room
	add := func(r *Room) {
		if r == nil || r.UserID != userID {
			return
		}
		for _, o := range out {
			if o.ID == r.ID {
				return
			}
		}
		out = append(out, r.clone())
	}
	add(s.roomByRoomID(ref))
	add(s.roomByCustom(userID, ref))
	if withDocID {
		add(s.roomByID(ref))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

// RoomsPage is a page of a project's rooms, newest first, and how many the
// project has: an index walk that stops after the page, the total from the
// project's counter. Unlike the other getters it returns the stored rows
// themselves, not copies (copying was a sixth of a list page's CPU): rows
// are never changed once stored (schema.go), and callers must not change
// them either.
func (s *Store) RoomsPage(userID string, p Page) ([]*Room, int) {
	total := s.counter(roomsCounter(userID))
	return window[*Room](s, tRooms, "project", total, p, userID), total
}

// RoomCount is the number of rooms (metrics).
func (s *Store) RoomCount() int { return s.counter(allRoomsCounter) }
