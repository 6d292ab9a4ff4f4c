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
	Webhook               *RoomWebhook     `json:"webhook,omitempty"`
	AutoCloseConfig       *AutoCloseConfig `json:"autoCloseConfig,omitempty"`
	AutoStartConfig       json.RawMessage  `json:"autoStartConfig,omitempty"`
	MultiComposition      json.RawMessage  `json:"multiComposition,omitempty"`
	GeoFence              string           `json:"geoFence,omitempty"`
	AllowedParticipantIDs []string         `json:"allowedParticipantIds,omitempty"`
	MaxParticipants       int              `json:"maxParticipants,omitempty"`
	Pin                   PinPolicy        `json:"pin"`
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
		r, ok := s.lookupRoom(c.UserID, c.RoomID)
		if !ok {
			return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
		}
		r.Disabled = c.Disabled
		r.UpdatedAt = c.At
		r.ModifyIndex = index
		s.bump("rooms", index)
		return r.clone(), nil
	})
}

func customKey(userID, custom string) string { return userID + "\x00" + custom }

func (s *Store) indexRoom(r *Room) {
	s.rooms[r.ID] = r
	s.roomByRoomID[r.RoomID] = r.ID
	if r.CustomRoomID != "" {
		s.roomByCustom[customKey(r.UserID, r.CustomRoomID)] = r.ID
	}
}

func applyCreateRoom(s *Store, index uint64, c *CreateRoom) (any, error) {
	r := c.Room
	if r.ID == "" || r.RoomID == "" || r.UserID == "" {
		return nil, errf(CodeInvalid, "room needs id, roomId and userId")
	}
	if r.CustomRoomID != "" {
		if id, ok := s.roomByCustom[customKey(r.UserID, r.CustomRoomID)]; ok {
			return &CreateRoomResult{Room: s.rooms[id].clone()}, nil
		}
	}
	if _, ok := s.roomByRoomID[r.RoomID]; ok {
		return nil, errf(CodeConflict, "room id %q already exists", r.RoomID)
	}
	if _, ok := s.rooms[r.ID]; ok {
		return nil, errf(CodeConflict, "room document %q already exists", r.ID)
	}
	r.CreateIndex, r.ModifyIndex = index, index
	if r.Webhook != nil {
		delete(s.goneURLs, goneKey(r.UserID, r.Webhook.EndPoint)) // configured again: try it again
	}
	s.indexRoom(&r)
	s.bump("rooms", index)
	return &CreateRoomResult{Room: r.clone(), Created: true}, nil
}

func applyDeactivateRoom(s *Store, index uint64, c *DeactivateRoom) (any, error) {
	id, ok := s.roomByRoomID[c.RoomID]
	if !ok || s.rooms[id].UserID != c.UserID {
		if _, custom := s.roomByCustom[customKey(c.UserID, c.RoomID)]; custom {
			return nil, errf(CodeInvalid, "deactivate takes the roomId, not the customRoomId %q", c.RoomID)
		}
		return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
	}
	r := s.rooms[id]
	r.Disabled = true
	r.UpdatedAt = c.At
	r.ModifyIndex = index
	s.bump("rooms", index)
	s.endOngoingSession(index, r, c.At, "room-deactivated")
	return r.clone(), nil
}

// lookupRoom resolves a roomId, customRoomId or document id within a project.
func (s *Store) lookupRoom(userID, ref string) (*Room, bool) {
	if id, ok := s.roomByRoomID[ref]; ok && s.rooms[id].UserID == userID {
		return s.rooms[id], true
	}
	if id, ok := s.roomByCustom[customKey(userID, ref)]; ok {
		return s.rooms[id], true
	}
	if r, ok := s.rooms[ref]; ok && r.UserID == userID {
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
	id, ok := s.roomByRoomID[roomID]
	if !ok {
		return nil, false
	}
	return s.rooms[id].clone(), true
}

// Rooms lists a project's rooms, newest first, optionally filtered by an exact
// roomId/customRoomId match.
func (s *Store) Rooms(userID, query string) []*Room {
	var out []*Room
	for _, r := range s.rooms {
		if r.UserID != userID {
			continue
		}
		if query != "" && r.RoomID != query && r.CustomRoomID != query {
			continue
		}
		out = append(out, r.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

// RoomCount is the number of rooms (metrics).
func (s *Store) RoomCount() int { return len(s.rooms) }
