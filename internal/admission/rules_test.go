package admission

import (
	"os"
	"strings"
	"testing"
)

func readRules(t *testing.T, name string) *Rules {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRules(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func TestParseRulesFormsAgree(t *testing.T) {
	txt, js := readRules(t, "rules.txt"), readRules(t, "rules.json")
	if txt.String() != js.String() {
		t.Fatalf("text and JSON forms differ:\n%s\n---\n%s", txt, js)
	}
	again, err := ParseRules([]byte(txt.String()))
	if err != nil || again.String() != txt.String() {
		t.Fatalf("String does not round-trip: %v", err)
	}
}

func TestClassify(t *testing.T) {
	r := readRules(t, "rules.txt")
	app := Entitlements{Sources: []string{"app", "web"}, Traffic: []string{"normal", "batch"}, DefaultSource: "web", DefaultTraffic: "normal"}
	partner := Entitlements{Sources: []string{"partner"}, DefaultSource: "partner"}
	for _, tc := range []struct {
		name   string
		req    Request
		weight int64
		level  string
	}{
		{"payments", Request{Route: "payments"}, 100, "critical"},
		{"read from app", Request{Route: "reads", Source: "app", Entitled: app}, 50, "normal"},
		{"unlisted route takes *", Request{Route: "export", Source: "web", Entitled: app}, 25, "normal"},
		{"crawler read", Request{Route: "reads", Traffic: "crawler", Entitled: Entitlements{Traffic: []string{"crawler"}}}, -10, "low"},
		{"vip tenant", Request{Tenant: "vip", Route: "reads", Source: "partner", Entitled: partner}, 75, "high"},
		{"client weight", Request{Route: "payments", Client: "legacy-sdk"}, 90, "high"},
		{"batch", Request{Route: "transfers", Traffic: "batch", Entitled: app, Source: "app"}, 80, "high"},
		// Bad input: claims the key is not entitled to are downgraded.
		{"claims partner without entitlement", Request{Route: "reads", Source: "partner", Entitled: app}, 45, "normal"},
		{"claims partner with no entitlements", Request{Route: "reads", Source: "partner"}, 40, "normal"},
		{"crawler cannot claim normal", Request{Route: "reads", Traffic: "normal",
			Entitled: Entitlements{Traffic: []string{"crawler"}, DefaultTraffic: "crawler"}}, -10, "low"},
		{"empty claim takes default", Request{Route: "reads", Entitled: partner}, 55, "normal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := r.Weight(&tc.req); w != tc.weight {
				t.Errorf("weight %d, want %d", w, tc.weight)
			}
			if got := r.LevelName(r.Classify(&tc.req)); got != tc.level {
				t.Errorf("level %q, want %q", got, tc.level)
			}
		})
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unknown key", "level a 1\nlevel b\nrooute x 1\n", `line 3: unknown key "rooute"`},
		{"missing weight", "level a\nroute x\n", "line 2: want"},
		{"bad weight", "level a\nroute x ten\n", `weight "ten": not an integer`},
		{"weight too big", "level a\nroute x 1000001\n", "outside"},
		{"duplicate", "level a\nroute x 1\nroute x 2\n", "duplicate rule for route x"},
		{"duplicate wildcard", "level a\nroute * 1\nroute * 2\n", "duplicate rule"},
		{"no levels", "route x 1\n", "no levels"},
		{"lowest with min", "level a 10\nlevel b 5\n", "lowest level"},
		{"middle without min", "level a\nlevel b\n", "only the lowest"},
		{"not decreasing", "level a 5\nlevel b 10\nlevel c\n", "must be below"},
		{"duplicate level", "level a 5\nlevel a\n", "duplicate level name"},
		{"bad level name", "level A\n", "want only a-z"},
		{"too many levels", strings.Repeat("level x 1\n", 9), "more than the maximum 8"},
		{"level after rules", "level a 1\nlevel b\nroute x 1\nlevel c\n", "levels must come before rules"},
		{"bad value", "level a\nroute x\x01 1\n", "not allowed"},
		{"json unknown field", `{"levels":[{"name":"a"}],"rulez":[]}`, `unknown field "rulez"`},
		{"json unknown dimension", `{"levels":[{"name":"a"}],"rules":[{"dimension":"region","value":"x","weight":1}]}`, `unknown dimension "region"`},
		{"json missing weight", `{"levels":[{"name":"a"}],"rules":[{"dimension":"route","value":"x"}]}`, "missing weight"},
		{"json trailing", `{"levels":[{"name":"a"}]} {}`, "data after"},
		{"json float", `{"levels":[{"name":"a"}],"rules":[{"dimension":"route","value":"x","weight":1.5}]}`, "json"},
		{"json empty value", `{"levels":[{"name":"a"}],"rules":[{"dimension":"route","value":"","weight":1}]}`, "want 1 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRules([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error; parsed\n%s", r)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestUpdateRulesKeepsOldOnError(t *testing.T) {
	c, _ := newTestController(t, Config{})
	before := c.Rules()
	if err := c.UpdateRules([]byte("level a\nbogus x 1\n")); err == nil {
		t.Fatal("no error for an unknown key")
	}
	if c.Rules() != before {
		t.Fatal("rules changed after a failed update")
	}
	if err := c.UpdateRules([]byte("level top 1\nlevel rest\nroute reads 1\n")); err != nil {
		t.Fatal(err)
	}
	if got := c.Rules().LevelName(c.Rules().Classify(&reqRead)); got != "top" {
		t.Fatalf("after update, reads at %q, want top", got)
	}
}
