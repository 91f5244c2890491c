package tests

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/mieweb/pulsevault/"

// goImports maps every Go file of the module (outside infra/tools, its own
// module) to the module packages it imports, as paths relative to the root.
func goImports(t *testing.T) map[string][]string {
	t.Helper()
	root := repoRoot(t)
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case rel == ".git", rel == "bin", rel == "infra/tools", rel == "vitals", strings.HasSuffix(rel, "/testdata"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		out[rel] = nil
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if rest, ok := strings.CutPrefix(p, module); ok {
				out[rel] = append(out[rel], rest)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("found only %d Go files under %s", len(out), root)
	}
	return out
}

func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

// TestImportGraph keeps the layout honest: test helpers stay out of
// production code, functions are independent adapters over shared/, cmd/
// only wires (nothing imports it, and shared/ never reaches up into
// functions/ or cmd/), shared/storage does not depend on the app's
// configuration, and shared/topology stays a leaf.
func TestImportGraph(t *testing.T) {
	files := goImports(t)
	for file, imports := range files {
		test := strings.HasSuffix(file, "_test.go")
		dir := filepath.ToSlash(filepath.Dir(file))
		for _, p := range imports {
			switch {
			case under(p, "shared/testutil") && !test && !under(dir, "shared/testutil") && !under(dir, "tests"):
				t.Errorf("%s: production code imports the test helper %s", file, p)
			case under(dir, "functions") && under(p, "functions") && !under(p, dir):
				t.Errorf("%s: function imports another function, %s (share it through shared/)", file, p)
			case under(p, "cmd"):
				t.Errorf("%s: imports %s; cmd/ only wires and nothing imports it", file, p)
			case under(dir, "shared") && under(p, "functions"):
				t.Errorf("%s: shared/ imports a function, %s", file, p)
			case under(dir, "shared/storage") && !test && under(p, "shared/platform/config"):
				t.Errorf("%s: shared/storage takes its own Options (storage.Configured), not the app's config, %s", file, p)
			case under(dir, "shared/topology"):
				t.Errorf("%s: shared/topology must stay a leaf (standard library only), imports %s", file, p)
			}
		}
	}
}
