package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-ledger/bulwark/internal/server"
)

// chromium finds Debian's chromium (scripts/setup.sh installs it as root),
// or says why it cannot.
func chromium() (path, why string) {
	if p := os.Getenv("BULWARK_CHROMIUM"); p != "" {
		return p, ""
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", "no chromium on PATH (scripts/setup.sh installs Debian's chromium when run as root: apt-get install -y chromium; or set BULWARK_CHROMIUM)"
}

// artifactsDir is where the screenshots go: $BULWARK_ARTIFACTS, else a
// temporary directory of the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BULWARK_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser runs steps in a headless chromium, failing the test on error.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// setValue sets an input's value (chromedp.SetValue refuses "").
func (b *browser) setValue(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%q).value = %q, true)`, sel, v))(ctx, t)
		return err
	})
}

// text is the text of the first element matching sel ("" when absent).
func (b *browser) text(sel string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(document.querySelector(%q) || {textContent: ""}).textContent`, sel)))
	if err != nil {
		return ""
	}
	return s
}

// visible reports whether sel is rendered (not hidden by itself or a
// parent).
func (b *browser) visible(sel string) bool {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).getClientRects().length > 0`, sel)))
	if err != nil {
		b.t.Fatalf("browser: visible %s: %v", sel, err)
	}
	return v
}

// waitText polls the text of sel until ok accepts it, for up to limit.
func (b *browser) waitText(what, sel string, limit time.Duration, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		if last = b.text(sel); ok(last) {
			return last
		}
		time.Sleep(150 * time.Millisecond)
	}
	b.t.Fatalf("browser: %s: %s shows %q after %v", what, sel, last, limit)
	return ""
}

// screenshot writes a PNG of the element sel named name into the
// artefacts.
func (b *browser) screenshot(name, sel string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

func positiveNumber(s string) bool {
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	return err == nil && v > 0
}

// TestConsoleInBrowser drives the console in a real headless chromium: a
// tenant key is refused at sign-in, the admin key signs in, the ledger's
// transactions per second move under load, the surge preset applied from
// the page pauses acme's recompute tasks in the task rows (rate 10 → 0)
// and its revert restores them (→ 10), a real backfill shows its lag per
// partition, a queued export is cancelled from the exports section, and
// sign-out returns to the sign-in form. Screenshots are kept under $BULWARK_ARTIFACTS (or a temporary
// directory; the log prints each path).
func TestConsoleInBrowser(t *testing.T) {
	path, why := chromium()
	if path == "" {
		fmt.Println("TestConsoleInBrowser skipped:", why)
		t.Skip(why)
	}
	// The features role runs a real backfill; no exports role: an export
	// stays queued until the console cancels it.
	admin, _ := startServerWith(t, t.TempDir(), func(c *server.Config) {
		c.Features.ChunkEvents, c.Features.TaskPoll = 1, 100*time.Millisecond
	}, server.RoleAPI, server.RoleWorkers, server.RoleCDC, server.RoleFeat)
	acme := newTenant(t, admin, "acme")
	newTenant(t, admin, "globex")
	for _, a := range []map[string]any{{"id": "world", "asset": "USD", "scale": 2},
		{"id": "merchant", "asset": "USD", "scale": 2}} {
		if r := acme.do(t, "POST", "/v1/accounts", a); r.status != 201 {
			t.Fatalf("account: %d %s", r.status, r.raw)
		}
	}
	dir := artifactsDir(t)
	t.Logf("console screenshots go to %s", dir)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1366, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	b := &browser{t: t, ctx: ctx, dir: dir}

	b.run("open the console", chromedp.Navigate(admin.base+"/console"), chromedp.WaitVisible(chromedp.CSS("#key")))
	b.run("sign in with a tenant key", chromedp.SendKeys(chromedp.CSS("#key"), acme.key), chromedp.Click(chromedp.CSS("#signin-button")))
	b.waitText("tenant key refused", "#signin-error", 5*time.Second, func(s string) bool { return strings.Contains(s, "admin_key_required") })
	b.screenshot("console-signin-refused", "body")
	if b.visible("#signout") {
		t.Fatal("the sign-out button shows before sign-in")
	}
	// From the keyboard: type the name, then the key, and Enter submits.
	b.run("sign in with the admin key", b.setValue("#key", ""), chromedp.SendKeys(chromedp.CSS("#operator-name"), "e2e"),
		chromedp.SendKeys(chromedp.CSS("#key"), adminKey+"\r"), chromedp.WaitVisible(chromedp.CSS("#overview")))

	// Load: a few clients sending transfers until the rate shows.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = acme.try("POST", "/v1/transactions", transferBody(fmt.Sprintf("load-%d-%d", w, i), "world", "merchant", "1"))
			}
		}()
	}
	tps := b.waitText("transactions per second under load", "#ledger-tps", 20*time.Second, positiveNumber)
	b.waitText("payments rate", `#classes tr[data-cls="payments"] td.rate`, 5*time.Second, positiveNumber)
	b.screenshot("console-overview-under-load", "#overview")
	close(stop)
	wg.Wait()
	t.Logf("ledger transactions per second shown under load: %s", tps)

	row := `#tasks tr[data-row="acme/recompute/all"]`
	b.waitText("recompute rate before the preset", row+" td.rate", 5*time.Second, func(s string) bool { return s == "10" })
	b.run("apply surge to acme", b.setValue("#tenant", "acme"), chromedp.Click(chromedp.CSS("#load-tenant")),
		chromedp.WaitVisible(chromedp.CSS("#preset-reason")), chromedp.SendKeys(chromedp.CSS("#preset-reason"), "e2e surge drill"),
		chromedp.Click(chromedp.CSS("#preset-apply")))
	b.waitText("preset applied", "#change-result", 5*time.Second, func(s string) bool { return strings.HasPrefix(s, "Applied surge for acme") })
	b.waitText("recompute paused", row+" td.rate", 5*time.Second, func(s string) bool { return s == "0" })
	b.waitText("paused column", row+" td.paused-cell", 2*time.Second, func(s string) bool { return s == "paused" })
	b.waitText("other tenant untouched", `#tasks tr[data-row="globex/recompute/all"] td.rate`, 2*time.Second, func(s string) bool { return s == "10" })
	b.waitText("audit history", "#history tbody", 5*time.Second, func(s string) bool { return strings.Contains(s, "e2e surge drill") })
	b.waitText("version reached", "#version-reach", 5*time.Second, func(s string) bool { return strings.Contains(s, "has reached this process") })
	b.screenshot("console-levers-surge-applied", "#levers")
	b.waitText("change stream state", "#cdc-state", 10*time.Second, func(s string) bool { return s == "streaming" || s == "idle" })
	b.waitText("change stream lag", "#cdc-bytes", 5*time.Second, func(s string) bool { return s != "—" })
	b.screenshot("console-tasks-paused", "#streams")

	b.run("revert surge", chromedp.SendKeys(chromedp.CSS("#preset-reason"), " over"), chromedp.Click(chromedp.CSS("#preset-revert")))
	b.waitText("preset reverted", "#change-result", 5*time.Second, func(s string) bool { return strings.HasPrefix(s, "Reverted surge for acme") })
	b.waitText("recompute resumed", row+" td.rate", 5*time.Second, func(s string) bool { return s == "10" })

	b.run("filter the task rows", chromedp.SendKeys(chromedp.CSS("#tasks-filter"), "globex"))
	b.waitText("task rows of globex only", "#tasks tbody", 3*time.Second, func(s string) bool {
		return strings.Contains(s, "globex") && !strings.Contains(s, "acme")
	})

	b.run("set an invalid value", b.setValue("#change-key", "quota.burst"), b.setValue("#change-value", "many"),
		b.setValue("#change-reason", "typo"), chromedp.Click(chromedp.CSS("#set-button")))
	b.waitText("invalid value refused", "#change-result", 5*time.Second, func(s string) bool { return strings.Contains(s, "invalid_setting_value") })
	b.run("apply without a reason", b.setValue("#preset-reason", ""), chromedp.Click(chromedp.CSS("#preset-apply")))
	b.waitText("reason required", "#change-result", 5*time.Second, func(s string) bool { return strings.Contains(s, "reason_required") })

	backfillAndCancelExport(t, b, admin, acme)

	b.run("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#signin")))
	b.waitText("signed out", "#signin-error", 2*time.Second, func(s string) bool { return s == "Signed out." })
}

// backfillAndCancelExport: acme's events, then a feature over them, whose
// backfill (one event per chunk, 0.2 chunks/s per partition) shows in the
// task rows with the engine's lag; then an export (no exports role runs
// it: it stays queued) listed with its pool and tenant and cancelled with
// the console's button.
func backfillAndCancelExport(t *testing.T, b *browser, admin, acme *client) {
	t.Helper()
	now := time.Now().UTC()
	var evs []map[string]any
	for i := range 20 {
		evs = append(evs, map[string]any{"id": fmt.Sprint("e", i), "time": now.Add(-time.Duration(i) * time.Second).Format(time.RFC3339Nano),
			"fields": map[string]any{"card": fmt.Sprint("c", i%3)}})
	}
	if r := acme.do(t, "POST", "/v1/events", map[string]any{"events": evs}); r.status != 202 {
		t.Fatalf("events: %d %s", r.status, r.raw)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(string(admin.do(t, "GET", "/metrics", nil).raw), `bulwark_features_events_applied_total{source="events"} 20`) {
		if time.Now().After(deadline) {
			t.Fatal("the 20 events were not applied in 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := admin.do(t, "PATCH", "/v1/admin/settings/tenants/acme", map[string]any{
		"set": map[string]any{"tasks.agg_backfill.rate_per_partition": "0.2"}, "reason": "slow backfill for the console test"}); r.status != 200 {
		t.Fatalf("rate: %d %s", r.status, r.raw)
	}
	if r := acme.do(t, "POST", "/v1/features/definitions", map[string]any{"name": "card_count", "source": "events",
		"entity": "card", "aggregation": "count", "windows": []string{"10m"}}); r.status != 201 {
		t.Fatalf("define: %d %s", r.status, r.raw)
	}
	b.run("show every tenant's task rows", b.setValue("#tasks-filter", ""))
	lagCell := `#tasks tr[data-row^="acme/agg_backfill/"] td:nth-child(6)`
	lag := b.waitText("backfill lag in the task rows", lagCell, 15*time.Second, positiveNumber)
	t.Logf("backfill row lag shown: %s events", lag)
	b.screenshot("console-backfill-task-rows", "#streams")

	r := acme.do(t, "POST", "/v1/exports", map[string]any{"kind": "accounts"})
	if r.status != 202 {
		t.Fatalf("export: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	jobRow := fmt.Sprintf(`#export-jobs tr[data-export=%q]`, id)
	b.waitText("the export listed", jobRow, 5*time.Second, func(s string) bool { return strings.Contains(s, "queued") && strings.Contains(s, "acme") })
	b.waitText("pool and tenant counts", "#export-pools tbody", 2*time.Second, func(s string) bool { return s == "normalacme01" })
	b.screenshot("console-export-queued", "#exports")
	b.run("cancel the export", chromedp.Click(chromedp.CSS(jobRow+" button.cancel-export")))
	b.waitText("cancelled", "#export-result", 5*time.Second, func(s string) bool { return s == "Cancelled export "+id+" of acme." })
	b.waitText("no export left", "#export-jobs tbody", 5*time.Second, func(s string) bool { return s == "No export queued or running." })
	if st := acme.do(t, "GET", "/v1/exports/"+id, nil); st.body["state"] != "cancelled" {
		t.Fatalf("the tenant sees the export %s: %s", st.body["state"], st.raw)
	}
}
