package rehearsal

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // substring of the error; "" for none
	}{
		{"payments=70,reads=25,crawler=5", ""},
		{" payments = 1 , batch=2 ", ""},
		{"payments=1,features=1,evaluate=1,exports=1", ""},
		{"payments=1,writes=1", `unknown class "writes" (known classes: batch, crawler, evaluate, exports, features, payments, reads)`},
		{"reads=1", "mix has no payments"},
		{"payments", "want class=weight"},
		{"payments=x", "weight of payments"},
		{"payments=0", "want more than 0"},
		{"payments=NaN", "want more than 0"},
		{"payments=1,payments=2", "given twice"},
		{"", "empty"},
	} {
		_, err := ParseMix(tc.in)
		if tc.want == "" {
			if err != nil {
				t.Errorf("ParseMix(%q) = %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrBadInput) {
			t.Errorf("ParseMix(%q) = %v, want ErrBadInput with %q", tc.in, err, tc.want)
		}
	}
}

func TestParseScenario(t *testing.T) {
	var cfg Config
	err := ParseScenario(strings.NewReader(`{"mix": {"reads": 1, "payments": 3}, "factors": [1, 4],
		"stage_duration": "3s", "step_duration": "1s", "preset": "surge", "preset_at": 4}`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Mix) != 2 || cfg.Mix[0] != (Share{"payments", 3}) || cfg.StageDuration != 3*time.Second ||
		cfg.StepDuration != time.Second || cfg.Preset != "surge" || cfg.PresetAt != 4 || len(cfg.Factors) != 2 {
		t.Errorf("scenario applied as %+v", cfg)
	}
	for _, bad := range []string{
		`{"mix": {"emails": 1, "payments": 1}}`,
		`{"mixx": {}}`,
		`{"mix": {"payments": 1}} {}`,
		`{"stage_duration": "soon"}`,
		`[1, 2]`,
		``,
	} {
		if err := ParseScenario(strings.NewReader(bad), &Config{}); !errors.Is(err, ErrBadInput) {
			t.Errorf("ParseScenario(%q) = %v, want ErrBadInput", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() Config {
		c := Config{URL: "http://127.0.0.1:8080", AdminKey: "k"}
		c.EnsureDefaults()
		return c
	}
	if c := ok(); c.Validate() != nil {
		t.Fatalf("defaults: %v", c.Validate())
	}
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"no url", func(c *Config) { c.URL = "127.0.0.1:8080" }, "want http(s)"},
		{"admin and tenant keys", func(c *Config) { c.Keys = []string{"t"} }, "either an admin key or tenant keys"},
		{"success > 1", func(c *Config) { c.Success = 1.5 }, "objective success 1.5"},
		{"ratio 0", func(c *Config) { c.P99Ratio = -1 }, "objective p99 ratio -1"},
		{"at not a stage", func(c *Config) { c.At = []float64{3} }, "objective at 3"},
		{"no baseline", func(c *Config) { c.Factors = []float64{2, 4}; c.At = []float64{4} }, "want 1 among them"},
		{"preset without admin", func(c *Config) { c.AdminKey, c.Keys, c.Preset, c.PresetAt = "", []string{"t"}, "surge", 10 }, "needs the admin key"},
		{"preset off stage", func(c *Config) { c.Preset, c.PresetAt = "surge", 3 }, "preset at 3"},
		{"rate bound", func(c *Config) { c.MaxRate = 1e9 }, "max rate"},
		{"time bound", func(c *Config) { c.StageDuration = time.Hour }, "want 100ms to 10m"},
		{"inflight bound", func(c *Config) { c.MaxInFlight = -1 }, "max in flight"},
	} {
		c := ok()
		tc.adjust(&c)
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want ErrBadInput with %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParseMix(f *testing.F) {
	f.Add("payments=70,reads=25,crawler=5")
	f.Add("payments=1,batch=1e6")
	f.Fuzz(func(t *testing.T, s string) {
		mix, err := ParseMix(s)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error not ErrBadInput: %v", err)
			}
			return
		}
		if validateMix(mix) != nil {
			t.Fatalf("accepted mix %v fails validation", mix)
		}
	})
}

func FuzzParseScenario(f *testing.F) {
	f.Add(`{"mix": {"payments": 70, "reads": 30}, "factors": [1, 4], "stage_duration": "2s"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var cfg Config
		if err := ParseScenario(strings.NewReader(s), &cfg); err != nil && !errors.Is(err, ErrBadInput) {
			t.Fatalf("error not ErrBadInput: %v", err)
		}
	})
}
