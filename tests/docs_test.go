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
