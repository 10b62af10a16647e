package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesAHugeTileCache: an impossible --features-tile-cache-mb
// is refused before anything starts (no data directory is created).
func TestServeRefusesAHugeTileCache(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	_, err := run(t, "serve", "--data-dir", dir, "--features-tile-cache-mb", "2000000")
	if err == nil || !strings.Contains(err.Error(), "--features-tile-cache-mb 2000000") {
		t.Fatalf("err %v, want the flag refused", err)
	}
	if m, _ := filepath.Glob(dir + "/*"); len(m) > 0 {
		t.Fatalf("files created in the data directory: %v", m)
	}
}
