package deploy_test

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestAlertsHaveRunbooks: every alert has a summary and a runbook
// annotation naming a heading of docs/observability.md that exists.
func TestAlertsHaveRunbooks(t *testing.T) {
	const doc = "../docs/observability.md"
	anchors := headingAnchors(t, doc)
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rf)
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			path, anchor, _ := strings.Cut(r.Annotations["runbook"], "#")
			if path != "docs/observability.md" || !anchors[anchor] {
				t.Errorf("%s: runbook %q is not a heading of %s", r.Alert, r.Annotations["runbook"], doc)
			}
		}
	}
	if n < 10 {
		t.Fatalf("%d alerts read, want the file's alerts", n)
	}
}

// headingAnchors returns the anchors Markdown renderers give the headings
// of path: lower case, spaces to hyphens, other punctuation dropped.
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
