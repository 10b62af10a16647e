package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/cli"
	"github.com/bulwark-ledger/bulwark/internal/pgtest"
	"github.com/bulwark-ledger/bulwark/internal/server"
	"github.com/bulwark-ledger/bulwark/internal/server/servertest"
)

// TestFeaturesDefinitionCommands runs bulwark features define, list, show
// and delete against a server (api role: the definitions routes); errors
// keep their problem codes.
func TestFeaturesDefinitionCommands(t *testing.T) {
	base := servertest.Start(t, server.Config{PostgresURL: pgtest.NewDB(t), AdminKey: "test-admin",
		Roles: []string{server.RoleAPI}, DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	servertest.Call(t, base, "test-admin", "POST", "/v1/admin/tenants", `{"id":"risk"}`, 201)
	key, _ := servertest.Call(t, base, "test-admin", "POST", "/v1/admin/tenants/risk/api-keys", `{}`, 201)["key"].(string)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := cli.Root()
		root.SetOut(&out)
		root.SetArgs(append(args, "--server", base, "--key", key))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	def := filepath.Join(t.TempDir(), "def.json")
	if err := os.WriteFile(def, []byte(`{"name":"card_count","source":"events","entity":"card","aggregation":"count","windows":["1h"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("features", "define", "--file", def); err != nil || !strings.Contains(out, `"version": 1`) {
		t.Fatalf("define: %v\n%s", err, out)
	}
	out, err := run("features", "list")
	var list struct {
		Definitions []struct{ Name string } `json:"definitions"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Definitions) != 1 || list.Definitions[0].Name != "card_count" {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run("features", "show", "card_count"); err != nil || !strings.Contains(out, `"versions"`) {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if _, err := run("features", "show", "nope"); err == nil || !strings.Contains(err.Error(), "feature_not_found") {
		t.Fatalf("show of an unknown feature: %v", err)
	}
	if _, err := run("features", "delete", "card_count"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if out, err := run("features", "list"); err != nil || strings.Contains(out, "card_count") {
		t.Fatalf("list after delete: %v\n%s", err, out)
	}
}
