package relay_test

import (
	"testing"
)

// TestDomainDecodesAsBaseType: a numeric domain is a JSON number in both
// snapshot rows and streamed changes.
func TestDomainDecodesAsBaseType(t *testing.T) {
	e := newEnv(t, `CREATE DOMAIN u128 AS numeric(39,0)`, `CREATE DOMAIN u128b AS u128`,
		`CREATE TABLE a (id int PRIMARY KEY, v u128, w u128b)`, `INSERT INTO a VALUES (1, 5, 6)`, `CREATE PUBLICATION p FOR TABLE a`)
	stop, _ := e.start(e.config())
	defer func() { _ = stop() }() // how the relay ended is asserted where it matters
	waitSlot(t, e.conn, "s")
	exec(t, e.conn, `INSERT INTO a VALUES (2, 7, 8)`)
	evs := consume(t, e.b.Addrs(), "bulwark.cdc.public.a", 2)
	want := []string{`{"id":1,"v":5,"w":6}`, `{"id":2,"v":7,"w":8}`}
	for i, ev := range evs {
		if string(ev.After) != want[i] {
			t.Errorf("%s event after = %s, want %s", ev.Op, ev.After, want[i])
		}
	}
}
