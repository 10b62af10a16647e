package server

import (
	"bufio"
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-ledger/bulwark/internal/admission"
	"github.com/bulwark-ledger/bulwark/internal/ledger"
	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// The OpenAPI document is checked against the source with the standard
// library only (go.mod has no YAML package): the document is read line by
// line, relying on its fixed layout: paths at two spaces under "paths:",
// methods at four; ProblemCode's enum and x-enumDescriptions under
// "components: schemas:".

// routeFiles always declare routes; the other files of this package and
// every internal package they import are scanned as well, so a package
// mounted later (a handler in http.go, a middleware wired in another file)
// cannot be left out of the doc.
var routeFiles = []string{"../ledger/http.go", "../tenant/http.go", "http.go"}

// constStatus gives the status of the Code... constants of packages that
// answer them through their own error types rather than with a literal
// http.StatusX next to the code. A package declaring such constants must be
// listed here, so that a new one cannot go undocumented.
var constStatus = map[string]func(code string) (int, bool){
	"problem": problem.DecodeStatus,
	"ledger":  func(code string) (int, bool) { return (&ledger.Error{Code: code}).Status(), true },
	"admission": func(code string) (int, bool) {
		for i := range 256 {
			if p := (&admission.Rejection{Reason: admission.Reason(i)}).Problem(); p.Code == code {
				return p.Status, true
			}
		}
		return 0, false
	},
}

// literalRE finds problem.Send(w, http.StatusX, "code", ...),
// problem.New(http.StatusX, "code", ...) and table rows such as
// {ErrX, http.StatusX, "code"}.
var (
	routeRE   = regexp.MustCompile(`\bHandle(?:Func)?\("([A-Z]+) (/[^"]*)"`)
	codeRE    = regexp.MustCompile(`(?m)^\s*(Code\w+)\s*=\s*"([^"]+)"`)
	literalRE = regexp.MustCompile(`\bhttp\.Status(\w+)\s*,\s*"([a-z0-9_]+)"`)
	docPathRE = regexp.MustCompile(`^  (/\S*):\s*$`)
	docOpRE   = regexp.MustCompile(`^    (get|put|post|delete|patch|head|options|trace):\s*$`)
	enumRE    = regexp.MustCompile(`^\s+- ([a-z0-9_]+)\s*$`)
	enumDesc  = regexp.MustCompile(`^\s+([a-z0-9_]+):\s*"?(\d{3})\b`)
)

// statusByName maps the net/http constants the handlers use to numbers.
var statusByName = map[string]int{
	"BadRequest": 400, "Unauthorized": 401, "Forbidden": 403, "NotFound": 404,
	"Conflict": 409, "Gone": 410, "RequestEntityTooLarge": 413, "UnsupportedMediaType": 415, "UnprocessableEntity": 422,
	"TooManyRequests": 429, "InternalServerError": 500, "ServiceUnavailable": 503,
}

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

// problemCodes reads ProblemCode's enum and the status at the start of each
// x-enumDescriptions entry.
func problemCodes(t *testing.T, lines []string) (enum map[string]bool, status map[string]int) {
	t.Helper()
	enum, status = map[string]bool{}, map[string]int{}
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
				status[m[1]], _ = strconv.Atoi(m[2])
			}
		}
	}
	if len(enum) == 0 {
		t.Fatal("no enum found in components.schemas.ProblemCode")
	}
	return enum, status
}

func TestOpenAPIErrorCodes(t *testing.T) {
	lines := yamlLines(t)
	enum, status := problemCodes(t, lines)
	doc := string(openapi)

	// want: every code the source can answer, with its HTTP status.
	want := map[string]int{}
	if len(codeRE.FindAllStringSubmatch(string(readFile(t, "../ledger/errors.go")), -1)) == 0 {
		t.Fatal("no Code... constants found in ../ledger/errors.go")
	}
	for _, file := range sourceFiles(t) {
		src := string(readFile(t, file))
		pkg := filepath.Base(filepath.Dir(file))
		for _, m := range codeRE.FindAllStringSubmatch(src, -1) {
			if !strings.Contains(doc, m[2]) {
				t.Errorf("%s.%s = %q does not appear in openapi.yaml", pkg, m[1], m[2])
			}
			statusOf, ok := constStatus[pkg]
			if !ok {
				t.Errorf("%s: %s = %q: add package %s to constStatus", file, m[1], m[2], pkg)
				continue
			}
			s, ok := statusOf(m[2])
			if !ok {
				t.Errorf("%s: %s = %q: constStatus[%q] knows no status for it", file, m[1], m[2], pkg)
				continue
			}
			want[m[2]] = s
		}
		for _, m := range literalRE.FindAllStringSubmatch(src, -1) {
			s, ok := statusByName[m[1]]
			if !ok {
				t.Errorf("%s: http.Status%s: add it to statusByName", file, m[1])
				continue
			}
			want[m[2]] = s
		}
	}

	for code, s := range want {
		if !enum[code] {
			t.Errorf("problem code %q is missing from ProblemCode's enum", code)
		}
		got, ok := status[code]
		switch {
		case !ok:
			t.Errorf("problem code %q has no x-enumDescriptions entry starting with its status", code)
		case got != s:
			t.Errorf("problem code %q: documented as %d, answered with %d", code, got, s)
		}
	}
	for code := range enum {
		if _, ok := want[code]; !ok {
			t.Errorf("ProblemCode's enum lists %q, which no handler answers", code)
		}
		if _, ok := status[code]; !ok {
			t.Errorf("ProblemCode %q has no x-enumDescriptions entry", code)
		}
	}
}
