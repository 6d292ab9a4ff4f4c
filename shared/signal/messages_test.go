package signal

import "testing"

func TestMarshal(t *testing.T) {
	for _, c := range []struct {
		typ  string
		v    any
		want string
	}{
		{TypePing, nil, `{"type":"ping"}`},
		{TypeRemoved, Removed{Reason: ReasonRoomClosed}, `{"type":"removed","data":{"reason":"room-closed"}}`},
		{TypeLeave, Leave{}, `{"type":"leave","data":{}}`},
	} {
		got, err := Marshal(c.typ, c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("Marshal(%q, %+v) = %s, %v; want %s", c.typ, c.v, got, err, c.want)
		}
		if must := MustMarshal(c.typ, c.v); string(must) != c.want {
			t.Errorf("MustMarshal(%q, %+v) = %s; want %s", c.typ, c.v, must, c.want)
		}
	}
	if _, err := Marshal(TypePing, make(chan int)); err == nil {
		t.Error("Marshal of a channel: no error")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustMarshal of a channel did not panic")
		}
	}()
	MustMarshal(TypePing, make(chan int))
}
