package encode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The scratch root in a shared temp dir is used only when it is this
// user's own directory: a symlink planted by its name is refused, and a
// root left open to others is closed before a job writes into it.
func TestScratchRootIsPrivate(t *testing.T) {
	base := t.TempDir()
	w := &Worker{Config: Config{TempDir: base}}
	root := filepath.Join(base, "pulsevault-transcode")

	elsewhere := t.TempDir()
	if err := os.Symlink(elsewhere, root); err != nil {
		t.Fatal(err)
	}
	if d, err := w.scratch(); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("scratch through a planted symlink: %q, %v", d, err)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatalf("a job dir was made where the symlink points: %v", ents)
	}

	os.Remove(root)
	if err := os.Mkdir(root, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o777) // past the umask
	d, err := w.scratch()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(root)
	if err != nil || fi.Mode().Perm() != 0o700 || filepath.Dir(d) != root {
		t.Fatalf("scratch root %v %v, job dir %s", fi.Mode(), err, d)
	}
}
