package tests

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityDocNamesRealTests keeps SECURITY.md honest: every test it
// cites as the proof of a defence exists in the tree.
func TestSecurityDocNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile("../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1)
	if len(names) < 10 {
		t.Fatalf("SECURITY.md cites %d tests; expected its table to name the tests behind each defence", len(names))
	}
	for _, m := range names {
		out, err := exec.Command("git", "-C", "..", "grep", "-l", "func "+m[1]+"(", "--", "*.go").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			t.Errorf("SECURITY.md cites %s, which no Go file defines", m[1])
		}
	}
}

// TestDocsNamePathsThatExist keeps the top-level docs in step with the tree:
// a package or file they cite in backquotes (`shared/...`, `functions/...`,
// `infra/...`) exists. Packages move; prose is easy to forget.
func TestDocsNamePathsThatExist(t *testing.T) {
	re := regexp.MustCompile("`((?:shared|functions|infra|cmd|tests)/[A-Za-z0-9_./<>-]+)`")
	for _, doc := range []string{"../SECURITY.md", "../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			p := strings.TrimSuffix(m[1], "/")
			if strings.ContainsAny(p, "<>*") {
				continue // a pattern such as infra/policies/<function>.json
			}
			if _, err := os.Stat("../" + p); err != nil {
				t.Errorf("%s cites %s, which is not in the tree", doc[3:], m[1])
			}
		}
	}
}
