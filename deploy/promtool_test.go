package deploy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPromtool checks the rule files with promtool (Debian's prometheus
// package; scripts/setup.sh installs it as root) and runs their unit tests
// (prometheus/*_test.yml: the burn-rate alerts fire on a sustained burn and
// not on a short one, stage 3 pages).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (install Debian's prometheus package: scripts/setup.sh does as root); rule syntax and the burn-rate unit tests are not checked")
	}
	rules, err := filepath.Glob("prometheus/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ruleFiles, testFiles []string
	for _, f := range rules {
		if strings.HasSuffix(f, "_test.yml") {
			testFiles = append(testFiles, f)
		} else {
			ruleFiles = append(ruleFiles, f)
		}
	}
	if len(ruleFiles) == 0 || len(testFiles) == 0 {
		t.Fatalf("rule files %v, unit tests %v: want both", ruleFiles, testFiles)
	}
	run := func(args ...string) {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(append([]string{"check", "rules"}, ruleFiles...)...)
	run(append([]string{"test", "rules"}, testFiles...)...)
}
