package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// The OpenAPI document is checked against the source with the standard
// library only (go.mod has no YAML package): the document is read line by
// line, relying on its fixed layout: paths at two spaces under "paths:",
// methods at four; ProblemCode's enum and x-enumDescriptions under
// "components: schemas:".

// routeFiles always declare routes; the other files of this package and
// every internal package they import are scanned as well, so a package
// mounted later (a handler in handler.go, a middleware wired in another file)
// cannot be left out of the doc.
var routeFiles = []string{"../ledger/http.go", "../tenant/http.go", "handler.go"}

var (
	routeRE   = regexp.MustCompile(`\bHandle(?:Func)?\("([A-Z]+) (/[^"]*)"`)
	docPathRE = regexp.MustCompile(`^  (/\S*):\s*$`)
	docOpRE   = regexp.MustCompile(`^    (get|put|post|delete|patch|head|options|trace):\s*$`)
	enumRE    = regexp.MustCompile(`^\s+- ([a-z0-9_]+)\s*$`)
	enumDesc  = regexp.MustCompile(`^\s+([a-z0-9_]+):\s*"(.*)"\s*$`)
	// literalCodeRE finds a problem code written as a string literal
	// where a constant of problem's table belongs.
	literalCodeRE = regexp.MustCompile(`problem\.New\("|problem\.Send\(\w+,\s*"|\breject\("|\bCode:\s*"`)
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func yamlLines(t *testing.T) []string {
	t.Helper()
	if !bytes.Equal(readFile(t, "openapi.yaml"), openapi) {
		t.Fatal("embedded openapi differs from openapi.yaml")
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(openapi))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// goFiles returns the non-test Go files of the package in dir.
func goFiles(dir string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var files []string
	for _, m := range matches {
		if !strings.HasSuffix(m, "_test.go") {
			files = append(files, m)
		}
	}
	return files
}

// sourceFiles is routeFiles plus the non-test files of this package and of
// every internal package they import.
func sourceFiles(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	var files []string
	add := func(p string) {
		if p = filepath.Clean(p); !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	for _, p := range routeFiles {
		add(p)
	}
	own := goFiles(".")
	for _, p := range own {
		add(p)
	}
	for _, file := range own {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			_, rel, ok := strings.Cut(path, "/internal/")
			if !ok {
				continue
			}
			for _, m := range goFiles(filepath.Join("..", rel)) {
				add(m)
			}
		}
	}
	return files
}

// codeRoutes returns "METHOD /path" of every route registered in the source.
func codeRoutes(t *testing.T) map[string]string {
	t.Helper()
	routes := map[string]string{}
	for _, file := range sourceFiles(t) {
		for _, m := range routeRE.FindAllStringSubmatch(string(readFile(t, file)), -1) {
			path := strings.ReplaceAll(strings.TrimSuffix(m[2], "{$}"), "...}", "}")
			routes[m[1]+" "+path] = file
		}
	}
	for _, f := range routeFiles[:2] {
		found := false
		for _, src := range routes {
			found = found || src == filepath.Clean(f)
		}
		if !found {
			t.Fatalf("no HandleFunc(\"METHOD /path\") found in %s: has the registration style changed?", f)
		}
	}
	return routes
}

// docRoutes returns "METHOD /path" of every operation under paths:.
func docRoutes(t *testing.T, lines []string) map[string]bool {
	t.Helper()
	ops := map[string]bool{}
	inPaths, path := false, ""
	for _, l := range lines {
		if l != "" && l[0] != ' ' && l[0] != '#' {
			inPaths = strings.HasPrefix(l, "paths:")
			continue
		}
		if !inPaths {
			continue
		}
		if m := docPathRE.FindStringSubmatch(l); m != nil {
			path = m[1]
		} else if m := docOpRE.FindStringSubmatch(l); m != nil && path != "" {
			ops[strings.ToUpper(m[1])+" "+path] = true
		}
	}
	if len(ops) == 0 {
		t.Fatal("no operations found under paths: in openapi.yaml")
	}
	return ops
}

func TestOpenAPIRoutes(t *testing.T) {
	code := codeRoutes(t)
	doc := docRoutes(t, yamlLines(t))
	var missing, extra []string
	for r, file := range code {
		if !doc[r] {
			missing = append(missing, r+" (registered in "+file+")")
		}
	}
	for r := range doc {
		if _, ok := code[r]; !ok {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is not documented in openapi.yaml", r)
	}
	for _, r := range extra {
		t.Errorf("openapi.yaml documents %s, which no handler registers", r)
	}
}

// problemCodes reads ProblemCode's enum and its x-enumDescriptions (YAML
// double-quoted strings, unescaped).
func problemCodes(t *testing.T, lines []string) (enum map[string]bool, desc map[string]string) {
	t.Helper()
	enum, desc = map[string]bool{}, map[string]string{}
	in, block := false, ""
	for _, l := range lines {
		trimmed := strings.TrimSpace(l)
		indent := len(l) - len(strings.TrimLeft(l, " "))
		switch {
		case l == "    ProblemCode:":
			in = true
			continue
		case !in || trimmed == "":
			continue
		case indent <= 4:
			in = false
			continue
		case indent == 6:
			block = strings.TrimSuffix(trimmed, ":")
			continue
		}
		switch block {
		case "enum":
			if m := enumRE.FindStringSubmatch(l); m != nil {
				enum[m[1]] = true
			}
		case "x-enumDescriptions":
			if m := enumDesc.FindStringSubmatch(l); m != nil {
				desc[m[1]] = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(m[2])
			}
		}
	}
	if len(enum) == 0 {
		t.Fatal("no enum found in components.schemas.ProblemCode")
	}
	return enum, desc
}

// TestOpenAPIErrorCodes: the document's ProblemCode enum is problem's table
// (internal/problem/codes.go), code for code, each description being the
// table's "status: doc"; and no source file writes a code as a literal.
func TestOpenAPIErrorCodes(t *testing.T) {
	enum, desc := problemCodes(t, yamlLines(t))
	for _, d := range problem.Defs() {
		if !enum[d.Code] {
			t.Errorf("problem code %q is missing from ProblemCode's enum", d.Code)
		}
		if want := fmt.Sprintf("%d: %s", d.Status, d.Doc); desc[d.Code] != want {
			t.Errorf("problem code %q: x-enumDescriptions says %q, the table says %q", d.Code, desc[d.Code], want)
		}
	}
	for code := range enum {
		if _, ok := problem.Lookup(code); !ok {
			t.Errorf("ProblemCode's enum lists %q, which is not in problem's table", code)
		}
	}
	for code := range desc {
		if !enum[code] {
			t.Errorf("x-enumDescriptions describes %q, which is not in the enum", code)
		}
	}
	for _, file := range sourceFiles(t) {
		for _, loc := range literalCodeRE.FindAllStringIndex(string(readFile(t, file)), -1) {
			t.Errorf("%s: offset %d: a problem code written as a literal; use a constant of internal/problem/codes.go", file, loc[0])
		}
	}
}
