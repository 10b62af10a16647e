package pgserver

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWALCompression: lz4 from PostgreSQL 15 on, pglz ("on") before it or
// when the version cannot be read.
func TestWALCompression(t *testing.T) {
	for v, want := range map[string]string{"15\n": "lz4", "17\n": "lz4", "14\n": "on", "": "on"} {
		dir := t.TempDir()
		if v != "" {
			if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if got := walCompression(dir); got != want {
			t.Errorf("PG_VERSION %q: %s, want %s", v, got, want)
		}
	}
}
