package admission

import (
	"os"
	"testing"
)

// FuzzParseRules: the parser never panics, accepts only what it can print,
// and what it prints parses to the same table and the same priorities.
func FuzzParseRules(f *testing.F) {
	for _, name := range []string{"rules.txt", "rules.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "reads", "partner", "crawler")
	}
	f.Add([]byte(testRulesText), "payments", "", "")
	f.Add([]byte("level a 1\nlevel b\nroute * -3\n"), "x", "y", "z")
	f.Add([]byte(`{"levels":[{"name":"a","min_weight":-5},{"name":"b"}],"rules":[{"dimension":"client","value":"c","weight":7}]}`), "c", "", "")
	f.Fuzz(func(t *testing.T, data []byte, route, source, traffic string) {
		r, err := ParseRules(data)
		if err != nil {
			if r != nil {
				t.Fatal("rules returned with an error")
			}
			return
		}
		text := r.String()
		again, err := ParseRules([]byte(text))
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, text)
		}
		if again.String() != text {
			t.Fatalf("canonical form not stable:\n%s\n---\n%s", text, again)
		}
		ent := Entitlements{Sources: []string{source}, Traffic: []string{traffic}}
		for _, req := range []Request{
			{Route: route, Source: source, Traffic: traffic, Entitled: ent, Client: route, Tenant: source},
			{Route: route, Source: source, Traffic: traffic}, // nothing entitled
		} {
			p := r.Classify(&req)
			if p > r.Top() {
				t.Fatalf("priority %d above top %d", p, r.Top())
			}
			if q := again.Classify(&req); q != p {
				t.Fatalf("priority %d, %d after round trip", p, q)
			}
			if r.LevelName(p) == "" {
				t.Fatalf("priority %d has no name", p)
			}
		}
		// A claim without entitlement never weighs more than no claim.
		bare := Request{Route: route}
		claimed := Request{Route: route, Source: source, Traffic: traffic}
		if r.Weight(&claimed) != r.Weight(&bare) {
			t.Fatalf("unentitled claims changed the weight: %d vs %d", r.Weight(&claimed), r.Weight(&bare))
		}
	})
}
