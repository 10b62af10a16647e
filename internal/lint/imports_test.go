package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/bulwark-ledger/bulwark"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// under reports whether package path p is dir or below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// assembly packages wire the others together; nothing below them may
// import them.
var assembly = []string{"internal/edge", "internal/server", "internal/cli", "cmd"}

// harness packages exist for tests and benchmarks only.
func harness(p string) bool {
	return under(p, "internal/bench") || under(p, "internal/pgtest") || strings.HasSuffix(p, "bench") ||
		strings.HasSuffix(p, "test") || under(p, "internal/lint")
}

// forbidden lists the import edges the structure forbids, with why. It is
// checked on production imports; testOnly edges also on test imports.
var forbidden = []struct {
	from, to string
	why      string
	tests    bool
}{
	{"internal/ledger", "internal/admission", "the edge wraps the cached account read; the ledger knows no admission", false},
	{"internal/cdc/repl", "internal/cdc/pgoutput", "the replication protocol does not depend on the decoder (LSN lives in repl)", false},
	{"internal/control", "internal/cli", "control is a library; its tests drive its API, not the CLI", true},
	{"client", "internal", "the public client must build outside this module: it defines its own types (its tests may start a server)", false},
	{"examples", "internal", "examples show what an external program can write", false},
}

// TestImportEdges fails on an import edge the structure forbids: domain
// packages importing the assembly (edge, server, cli), production code
// below the assembly importing a test or benchmark harness, and the
// specific edges above.
func TestImportEdges(t *testing.T) {
	for _, v := range violations(listPackages(t)) {
		t.Error(v)
	}
}

// TestForbiddenEdgesAreCaught: the check itself works (a test that cannot
// fail proves nothing): fabricated ledger → edge, ledger → admission and
// production → harness edges are each reported; the CLI may import a
// harness.
func TestForbiddenEdgesAreCaught(t *testing.T) {
	p := func(path string, imports ...string) pkg {
		for i := range imports {
			imports[i] = module + "/" + imports[i]
		}
		return pkg{ImportPath: module + "/" + path, Imports: imports}
	}
	got := violations([]pkg{
		p("internal/ledger", "internal/edge", "internal/admission"),
		p("internal/control", "internal/pgtest"),
		p("internal/cli", "internal/bench/ledgerbench"),
		p("client", "internal/problem"),
	})
	if len(got) != 4 {
		t.Fatalf("%d violations, want 4 (ledger → edge, ledger → admission, control → pgtest, client → problem):\n%s", len(got), strings.Join(got, "\n"))
	}
}

func violations(pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				out = append(out, edgeViolations(from, rel(imp), test)...)
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	return out
}

func edgeViolations(from, to string, test bool) []string {
	var out []string
	if isAssembly(to) && !isAssembly(from) && !harness(from) && !test {
		out = append(out, fmt.Sprintf("%s imports %s: domain packages may not import the assembly (%s)", from, to, strings.Join(assembly, ", ")))
	}
	// The CLI may: `bulwark bench …` runs the harnesses.
	if !test && !harness(from) && !isAssembly(from) && harness(to) {
		out = append(out, fmt.Sprintf("%s imports %s: production code may not import a test or benchmark harness", from, to))
	}
	for _, f := range forbidden {
		if under(from, f.from) && under(to, f.to) && (!test || f.tests) {
			out = append(out, fmt.Sprintf("%s imports %s: forbidden (%s)", from, to, f.why))
		}
	}
	return out
}

func isAssembly(p string) bool {
	for _, a := range assembly {
		if under(p, a) {
			return true
		}
	}
	return false
}
