// Command vulndbindex turns the OSV files of the golang.org/x/vulndb module
// (data/osv/*.json, fetched through the Go module proxy) into the v1
// database layout that `govulncheck -db file:///DIR` reads: index/db.json,
// index/modules.json and ID/<id>.json. It exists because vuln.go.dev is not
// reachable from our build machines while the module proxy is.
//
//	go run ./vulndbindex -osv $(go mod download -json golang.org/x/vulndb@V | jq -r .Dir)/data/osv -out DIR [-modified 2026-11-05T23:49:57Z]
//
// infra/security/govulncheck.sh runs it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// entry is the part of an OSV record the index needs.
type entry struct {
	ID        string    `json:"id"`
	Modified  time.Time `json:"modified"`
	Published time.Time `json:"published"`
	Affected  []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string `json:"type"`
			Events []struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			} `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

func main() {
	src := flag.String("osv", "", "directory of OSV files (x/vulndb's data/osv)")
	out := flag.String("out", "", "database directory to write")
	stamp := flag.String("modified", "", "RFC 3339 time of the snapshot (e.g. its pseudo-version's commit time), for entries that carry none")
	flag.Parse()
	if *src == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: vulndbindex -osv DIR -out DIR")
		os.Exit(2)
	}
	var when time.Time
	if *stamp != "" {
		var err error
		if when, err = time.Parse(time.RFC3339, *stamp); err != nil {
			fmt.Fprintln(os.Stderr, "vulndbindex: -modified:", err)
			os.Exit(2)
		}
	}
	if err := run(*src, *out, when); err != nil {
		fmt.Fprintln(os.Stderr, "vulndbindex:", err)
		os.Exit(1)
	}
}

func run(src, out string, snapshot time.Time) error {
	files, err := filepath.Glob(filepath.Join(src, "GO-*.json"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no GO-*.json in %s (%v)", src, err)
	}
	for _, d := range []string{"ID", "index"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}
	modules := map[string]*moduleMeta{}
	var newest time.Time
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		if filepath.Base(f) != e.ID+".json" {
			return fmt.Errorf("%s: id %q does not match the file name", filepath.Base(f), e.ID)
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return err
		}
		// The module's copy leaves modified (and for new entries published)
		// at zero: the hosted database stamps them when it deploys.
		if e.Modified.IsZero() {
			e.Modified = e.Published
		}
		if e.Modified.IsZero() {
			e.Modified = snapshot
		}
		if e.Modified.After(newest) {
			newest = e.Modified
		}
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &moduleMeta{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			fix := latestFix(a.Ranges)
			if n := len(m.Vulns); n > 0 && m.Vulns[n-1].ID == e.ID {
				// One entry may list a module twice (per package): keep one
				// index row, open if either is open.
				if prev := &m.Vulns[n-1]; prev.Fixed != "" && (fix == "" || semver.Compare("v"+fix, "v"+prev.Fixed) > 0) {
					prev.Fixed = fix
				}
				continue
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: fix})
		}
	}
	list := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.Slice(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), list); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), map[string]time.Time{"modified": newest}); err != nil {
		return err
	}
	fmt.Printf("vulndbindex: %d entries, %d modules, modified %s\n", len(files), len(list), newest.Format(time.RFC3339))
	return nil
}

// latestFix is the highest fixed version of the SEMVER ranges, or "" when
// the last range is still open (no fix yet). govulncheck only uses it to
// skip entries cheaply; the OSV entry itself stays the authority.
func latestFix(ranges []struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced,omitempty"`
		Fixed      string `json:"fixed,omitempty"`
	} `json:"events"`
}) string {
	best := ""
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		open := false
		for _, ev := range r.Events {
			switch {
			case ev.Introduced != "":
				open = true
			case ev.Fixed != "":
				open = false
				if best == "" || semver.Compare("v"+ev.Fixed, "v"+best) > 0 {
					best = ev.Fixed
				}
			}
		}
		if open {
			return "" // affected up to the newest version
		}
	}
	return strings.TrimPrefix(best, "v")
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
