package state

import (
	"testing"

	iradix "github.com/hashicorp/go-immutable-radix"
)

// The state's trees are built without watch channels (schema.go's init):
// an index walk hands back no channel, and writes and reads still work.
func TestStateTreesCarryNoWatchChannels(t *testing.T) {
	if !iradix.WatchChannelsDisabled() {
		t.Fatal("go-immutable-radix watch channels are on")
	}
	f := newBenchFSM()
	for i := 0; i < 50; i++ {
		f.apply(t, CmdCreateRoom, CreateRoom{Room: benchRoom(i)})
	}
	n := 0
	f.Read(func(s *Store) {
		it := s.iter(tRooms, "project", true, benchUser)
		if ch := it.WatchCh(); ch != nil {
			t.Fatal("an index walk returned a watch channel")
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			n++
		}
	})
	if n != 50 {
		t.Fatalf("walked %d rooms, want 50", n)
	}
}
