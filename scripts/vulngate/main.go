// Command vulngate reads govulncheck's JSON stream (-format json) on stdin
// and decides the gate: it fails when code of this module calls a
// vulnerable function of a third-party module (upgrade it: go.mod is ours
// to change), and reports vulnerabilities of the Go standard library
// without failing, with the Go release that fixes them: the toolchain is
// the machine's, installed outside this repository (see README).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
}

type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type message struct {
	Finding *finding `json:"finding"`
}

func main() {
	dec := json.NewDecoder(os.Stdin)
	called := map[string]finding{} // by OSV id: symbol-level findings only
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "vulngate: read govulncheck output:", err)
			os.Exit(2)
		}
		// A finding whose first frame names a function is reachable from
		// this module's code; module- or package-level ones are not.
		if f := m.Finding; f != nil && len(f.Trace) > 0 && f.Trace[0].Function != "" {
			called[f.OSV] = *f
		}
	}
	ids := make([]string, 0, len(called))
	for id := range called {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	failed := 0
	for _, id := range ids {
		f := called[id]
		top := f.Trace[0]
		where := top.Package + "." + top.Function
		if top.Module == "stdlib" {
			fmt.Printf("warning: %s in the Go standard library %s (%s), fixed in Go %s\n", id, top.Version, where, f.FixedVersion)
			continue
		}
		failed++
		fmt.Printf("FAIL: %s in %s@%s (%s), fixed in %s: upgrade it\n", id, top.Module, top.Version, where, f.FixedVersion)
	}
	fmt.Printf("vulngate: %d called vulnerabilities (%d in modules this repository pins)\n", len(ids), failed)
	if failed > 0 {
		os.Exit(1)
	}
}
