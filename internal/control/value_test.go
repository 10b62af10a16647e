package control_test

import (
	"errors"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/control"
)

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		typ   control.Type
		in    string
		canon string
		err   error
	}{
		{control.Int, "10", "10", nil},
		{control.Int, " -3 ", "-3", nil},
		{control.Int, "1.5", "", control.ErrInvalidValue},
		{control.Int, "99999999999999999999", "", control.ErrInvalidValue},
		{control.Int, "", "", control.ErrInvalidValue},
		{control.Float, "0.50", "0.5", nil},
		{control.Float, "-0", "0", nil},
		{control.Float, "1e3", "1000", nil},
		{control.Float, "NaN", "", control.ErrInvalidValue},
		{control.Float, "inf", "", control.ErrInvalidValue},
		{control.Float, "0x10", "", control.ErrInvalidValue},
		{control.Float, "1_0", "", control.ErrInvalidValue},
		{control.Bool, "true", "true", nil},
		{control.Bool, "yes", "", control.ErrInvalidValue},
		{control.Duration, "1500ms", "1.5s", nil},
		{control.Duration, "5", "", control.ErrInvalidValue},
		{control.Text, " {\"a\":1} ", " {\"a\":1} ", nil},
		{control.Text, "\xff", "", control.ErrInvalidValue},
	} {
		v, err := control.ParseValue(tc.typ, tc.in)
		if !errors.Is(err, tc.err) {
			t.Errorf("ParseValue(%v, %q) error = %v, want %v", tc.typ, tc.in, err, tc.err)
			continue
		}
		if err == nil && v.String() != tc.canon {
			t.Errorf("ParseValue(%v, %q) = %q, want %q", tc.typ, tc.in, v.String(), tc.canon)
		}
	}
}

func TestRegistryParse(t *testing.T) {
	r := control.NewRegistry()
	rate := control.TaskRateKey(control.TaskRecompute)
	for _, tc := range []struct {
		key, in string
		err     error
	}{
		{rate, "0", nil},
		{rate, "2.5", nil},
		{rate, "-1", control.ErrOutOfRange},
		{rate, "2000000", control.ErrOutOfRange},
		{rate, "fast", control.ErrInvalidValue},
		{"tasks.nope.rate_per_partition", "1", control.ErrUnknownKey},
		{control.KeyPriorityWeight, "101", control.ErrOutOfRange},
		{control.KeyPriorityWeight, "7.5", control.ErrInvalidValue},
	} {
		if _, err := r.Parse(tc.key, tc.in); !errors.Is(err, tc.err) {
			t.Errorf("Parse(%q, %q) = %v, want %v", tc.key, tc.in, err, tc.err)
		}
	}
	if err := r.SetValidator(control.KeyAdmissionRules, func(s string) error {
		if s == "bad" {
			return errors.New("rule 1: nonsense")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Parse(control.KeyAdmissionRules, "bad"); !errors.Is(err, control.ErrInvalidValue) {
		t.Errorf("validator not applied: %v", err)
	}
	if _, err := r.Parse(control.KeyAdmissionRules, "good"); err != nil {
		t.Errorf("validator rejected a good value: %v", err)
	}
}

func TestParseAssignment(t *testing.T) {
	for _, tc := range []struct {
		in, key, value string
		ok             bool
	}{
		{"tasks.recompute.rate_per_partition=0", "tasks.recompute.rate_per_partition", "0", true},
		{" quota.burst =5", "quota.burst", "5", true},
		{"admission.rules=a=b", "admission.rules", "a=b", true},
		{"quota.burst=", "quota.burst", "", true},
		{"quota.burst", "", "", false},
		{"=5", "", "", false},
		{"Quota.Burst=5", "", "", false},
		{"quota..burst=5", "", "", false},
	} {
		k, v, err := control.ParseAssignment(tc.in)
		if (err == nil) != tc.ok || k != tc.key || v != tc.value {
			t.Errorf("ParseAssignment(%q) = %q, %q, %v", tc.in, k, v, err)
		}
	}
}

// FuzzParseAssignment checks that no input panics and that every accepted
// value has a canonical form that parses back to itself.
func FuzzParseAssignment(f *testing.F) {
	r := control.NewRegistry()
	for _, s := range []string{
		"tasks.recompute.rate_per_partition=0", "quota.burst=12", "priority.weight=-1",
		"admission.rules={\"rules\":[]}", "quota.requests_per_sec=1e400", "x=y=z", "=", "",
		"quota.crawler.requests_per_sec= 0.25 ", "tasks.export_huge.rate_per_partition=NaN",
	} {
		f.Add(s)
	}
	types := []control.Type{control.Int, control.Float, control.Bool, control.Duration, control.Text}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range types {
			v, err := control.ParseValue(typ, s)
			if err != nil {
				continue
			}
			again, err := control.ParseValue(typ, v.String())
			if err != nil || again != v {
				t.Fatalf("%v %q: canonical %q reparses to %v, %v", typ, s, v.String(), again, err)
			}
		}
		k, val, err := control.ParseAssignment(s)
		if err != nil {
			return
		}
		v, err := r.Parse(k, val)
		if err != nil {
			return
		}
		again, err := r.Parse(k, v.String())
		if err != nil || again != v {
			t.Fatalf("%q: canonical %q reparses to %v, %v", s, v.String(), again, err)
		}
	})
}

func TestSnapshotReadsDoNotAllocate(t *testing.T) {
	w := control.NewWatcher(nil, control.NewRegistry(), nil, nil)
	s := w.Current()
	allocs := testing.AllocsPerRun(1000, func() {
		_ = s.Float("acme", "tasks.recompute.rate_per_partition")
		_ = s.Int("acme", control.KeyPriorityWeight)
		_ = s.Text("acme", control.KeyAdmissionRules)
		_ = w.Float("acme", "quota.requests_per_sec")
	})
	if allocs != 0 {
		t.Fatalf("snapshot reads allocate %v times", allocs)
	}
}

func BenchmarkWatcherFloat(b *testing.B) {
	w := control.NewWatcher(nil, control.NewRegistry(), nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Float("acme", "tasks.recompute.rate_per_partition")
	}
}
