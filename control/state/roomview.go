package state

import "github.com/hashicorp/go-memdb"

// roomView is requestView's counterpart for the rooms table's unique
// lookups (by document id, roomId, customRoomId): in an FSM's write
// transaction they are answered from the table as the transaction found
// it and the rooms the transaction stored, not through the transaction,
// whose reads would drop the copied-node caches of the indexes every
// create then writes (see requestView). Rooms are stored only by putRoom
// and never deleted; a new version that moved a key leaves "no room" under
// the old one, as memdb's unique indexes would.
type roomView struct {
	base     *memdb.Txn // the table before this transaction (read only)
	byID     map[string]*Room
	byRoomID map[string]*Room
	byCustom map[customKey]*Room // a nil value: no room any more
}

type customKey struct{ userID, customRoomID string }

func newRoomView(db *memdb.MemDB) *roomView {
	return &roomView{base: db.Txn(false), byID: map[string]*Room{}, byRoomID: map[string]*Room{}, byCustom: map[customKey]*Room{}}
}

// put records r, the new version of prev (nil for a new room).
func (v *roomView) put(prev, r *Room) {
	if prev != nil {
		if prev.RoomID != r.RoomID {
			v.byRoomID[prev.RoomID] = nil
		}
		if prev.CustomRoomID != "" && (prev.UserID != r.UserID || prev.CustomRoomID != r.CustomRoomID) {
			v.byCustom[customKey{prev.UserID, prev.CustomRoomID}] = nil
		}
	}
	v.byID[r.ID] = r
	v.byRoomID[r.RoomID] = r
	if r.CustomRoomID != "" {
		v.byCustom[customKey{r.UserID, r.CustomRoomID}] = r
	}
}

func (v *roomView) first(index string, args ...any) *Room {
	r, err := v.base.First(tRooms, index, args...)
	if err != nil {
		panic("state: rooms." + index + " lookup: " + err.Error())
	}
	room, _ := r.(*Room)
	return room
}

func (s *Store) roomByID(id string) *Room {
	v := s.rooms
	if v == nil {
		return one[*Room](s, tRooms, "id", id)
	}
	if r, ok := v.byID[id]; ok {
		return r
	}
	return v.first("id", id)
}

func (s *Store) roomByRoomID(roomID string) *Room {
	v := s.rooms
	if v == nil {
		return one[*Room](s, tRooms, "roomId", roomID)
	}
	if r, ok := v.byRoomID[roomID]; ok {
		return r
	}
	return v.first("roomId", roomID)
}

func (s *Store) roomByCustom(userID, customRoomID string) *Room {
	v := s.rooms
	if v == nil {
		return one[*Room](s, tRooms, "custom", userID, customRoomID)
	}
	if r, ok := v.byCustom[customKey{userID, customRoomID}]; ok {
		return r
	}
	return v.first("custom", userID, customRoomID)
}
