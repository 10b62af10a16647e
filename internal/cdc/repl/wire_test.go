package repl

import (
	"testing"
	"time"
)

func FuzzParseFrame(f *testing.F) {
	f.Add(append([]byte{'w'}, make([]byte, 30)...))
	f.Add(append([]byte{'k'}, make([]byte, 17)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := ParseFrame(data)
		if err == nil && fr.Kind != 'w' && fr.Kind != 'k' {
			t.Fatalf("kind %q", fr.Kind)
		}
	})
}

func TestStatusUpdateRoundTrip(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	b := StatusUpdate(10, 9, 8, now, true)
	if len(b) != 34 || b[0] != 'r' || b[33] != 1 {
		t.Fatalf("bad status update %x", b)
	}
	// The same layout as a keepalive after the type byte and first LSN.
	k := append([]byte{'k'}, b[1:9]...)
	k = append(k, b[25:33]...)
	k = append(k, 0)
	fr, err := ParseFrame(k)
	if err != nil {
		t.Fatal(err)
	}
	if fr.ServerWALEnd != LSN(10) || !fr.ServerTime.Equal(now) {
		t.Fatalf("round trip: %+v", fr)
	}
}
