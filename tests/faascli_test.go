package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/binpath"
)

// stackFunctions are the functions stack.yml must declare.
var stackFunctions = []string{"upload", "upload-finalize", "transcode", "sign-url", "media", "audit-append"}

func faasCLI(t *testing.T) string {
	t.Helper()
	p, err := binpath.Find("faas-cli")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// repoRoot is the module root (tests run in tests/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// copyProject copies what faas-cli needs (stack.yml, templates, the module) into a temp dir so
// that ./build/ is written there, not into the work tree.
func copyProject(t *testing.T) string {
	t.Helper()
	root, dir := repoRoot(t), t.TempDir()
	for _, p := range []string{"stack.yml", "templates", "go.mod", "go.sum", "cmd", "shared", "functions"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(root, p), filepath.Join(dir, p)).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v\n%s", p, err, out)
		}
	}
	if err := os.Symlink("templates", filepath.Join(dir, "template")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// `faas-cli build --shrinkwrap` writes one Docker build context per function; each must compile
// with plain `go build` and no network (GOPROXY=off: only the local module cache).
func TestShrinkwrapBuildContextsCompile(t *testing.T) {
	dir := copyProject(t)
	cmd := exec.Command(faasCLI(t), "build", "--shrinkwrap", "-f", "stack.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("faas-cli build --shrinkwrap: %v\n%s", err, out)
	}
	var first map[string]string
	for i, fn := range stackFunctions {
		ctxDir := filepath.Join(dir, "build", fn)
		for _, f := range []string{"Dockerfile", "template.yml", "function/go.mod", "function/cmd/pulsevault/main.go", "function/README.md"} {
			if _, err := os.Stat(filepath.Join(ctxDir, f)); err != nil {
				t.Errorf("%s: build context lacks %s", fn, f)
			}
		}
		df, _ := os.ReadFile(filepath.Join(ctxDir, "Dockerfile"))
		if !strings.Contains(string(df), "USER 10001") {
			t.Errorf("%s: Dockerfile does not run as non-root", fn)
		}
		tree := hashTree(t, filepath.Join(ctxDir, "function"))
		if i > 0 {
			// Same module sources as the first context (which is compiled below): only the
			// function's own handler files at the root differ, and the build does not read them.
			for p, h := range tree {
				if !strings.Contains(p, "/") {
					continue
				}
				if first[p] != h {
					t.Errorf("%s: %s differs from %s's build context", fn, p, stackFunctions[0])
				}
			}
			continue
		}
		first = tree
		build := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "pulsevault"), "./cmd/pulsevault")
		build.Dir = filepath.Join(ctxDir, "function")
		build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%s: go build in the shrinkwrapped context: %v\n%s", fn, err, out)
		}
	}
}

// hashTree maps every file under dir (slash-separated relative path) to its SHA-256.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(b)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
