package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/bulwark-ledger/bulwark/client"
	"github.com/bulwark-ledger/bulwark/internal/server"
)

// dbFlags are the flags of commands that talk to PostgreSQL directly.
type dbFlags struct {
	postgres string
	dataDir  string
}

func (f *dbFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.postgres, "postgres", os.Getenv("BULWARK_POSTGRES_URL"),
		"PostgreSQL URL (env BULWARK_POSTGRES_URL); empty means the embedded cluster under --data-dir")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", envOr("BULWARK_DATA_DIR", ".bulwark"),
		"data directory of the embedded defaults (env BULWARK_DATA_DIR)")
}

// open connects to the configured database, starting the embedded cluster
// when no URL is given, and applies pending migrations. It never creates a
// cluster, a database or the schema: run outside the data directory, a
// maintenance command used to initialise an empty ledger and report "all
// invariants hold" on it. close releases everything this call started.
func (f *dbFlags) open(ctx context.Context) (pool *pgxpool.Pool, url string, closeFn func(), err error) {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return server.OpenStorage(ctx, server.Config{PostgresURL: f.postgres, DataDir: f.dataDir, MaxConns: 8,
		Logger: quiet, ExistingOnly: true})
}

// apiFlags are the flags of commands that call a running server's HTTP API.
type apiFlags struct {
	server  string
	key     string
	dataDir string
}

func (f *apiFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", envOr("BULWARK_SERVER", "http://127.0.0.1:8080"),
		"base URL of a running bulwark (env BULWARK_SERVER)")
	cmd.Flags().StringVar(&f.key, "key", os.Getenv("BULWARK_ADMIN_KEY"),
		"API key to use (env BULWARK_ADMIN_KEY); empty reads the admin key from --data-dir")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", envOr("BULWARK_DATA_DIR", ".bulwark"),
		"data directory holding admin.key when --key is empty")
}

// apiKey is --key, or the admin key of --data-dir.
func (f *apiFlags) apiKey() (string, error) {
	if f.key != "" {
		return f.key, nil
	}
	b, err := os.ReadFile(filepath.Join(f.dataDir, "admin.key"))
	if err != nil {
		return "", fmt.Errorf("no --key given and no admin key in %s: %w", f.dataDir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// client returns the Go client of the server (the public client package:
// typed calls, problem codes as *client.Error, retries of what is safe to
// retry). One command sends one request at a time: no batching. The
// caller closes it.
func (f *apiFlags) client() (*client.Client, error) {
	key, err := f.apiKey()
	if err != nil {
		return nil, err
	}
	return client.New(f.server, key, client.WithoutBatching(), client.WithRetry(3, 10*time.Second))
}

// withClient runs fn with the server's client and closes it.
func (f *apiFlags) withClient(fn func(c *client.Client) error) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// call sends a JSON request and decodes a JSON answer into out (when
// non-nil), for routes the client package has no typed call for. A
// problem+json answer becomes an error carrying its code and detail.
func (f *apiFlags) call(ctx context.Context, method, path string, in, out any) error {
	key, err := f.apiKey()
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(f.server, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var p struct{ Code, Detail string }
		if json.Unmarshal(data, &p) == nil && p.Code != "" {
			return fmt.Errorf("%s: %s (HTTP %d)", p.Code, p.Detail, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// envInt is the integer value of env key, 0 when unset or not an integer
// (the flag's own validation then applies to what the user passed).
func envInt(key string) int {
	n, _ := strconv.Atoi(os.Getenv(key))
	return n
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
