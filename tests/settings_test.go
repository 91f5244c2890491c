package tests

import (
	"bytes"
	pulseserver "github.com/mieweb/pulsevault/shared/pulse/server"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/audit/chain"
	"github.com/mieweb/pulsevault/shared/faas/connector"
	"github.com/mieweb/pulsevault/shared/identity/issuer"
	"github.com/mieweb/pulsevault/shared/ingest/finalize"
	"github.com/mieweb/pulsevault/shared/ingest/tusupload"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/settings"
	"github.com/mieweb/pulsevault/shared/playback/grant"
)

// TestConfigEnvDeclaredOnce: every environment variable is declared
// (a settings.Var with Env: "NAME") exactly once in the whole tree; a table
// that needs another package's variable includes that declaration. It
// reads the source, so it also sees declarations nothing imports yet (go
// vet's composites check refuses an unkeyed settings.Var, which this scan
// would miss).
func TestConfigEnvDeclaredOnce(t *testing.T) {
	root := repoRoot(t)
	seen := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel == ".git", rel == "bin", rel == "vitals", rel == "build", strings.HasSuffix(rel, "testdata"):
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Env" {
				return true
			}
			if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, _ := strconv.Unquote(lit.Value)
				seen[name] = append(seen[name], fset.Position(lit.Pos()).String())
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 50 {
		t.Fatalf("found only %d declared variables; is the scan still looking at the settings tables?", len(seen))
	}
	for name, at := range seen {
		if len(at) > 1 {
			t.Errorf("%s is declared %d times: %s (declare it once and include that Var in the other table)", name, len(at), strings.Join(at, ", "))
		}
	}
}

// docTables are the generated settings tables of the docs, by file and the
// name in their markers: <!-- settings:NAME --> ... <!-- /settings -->.
var docTables = map[string][]struct {
	name      string
	table     settings.Table
	withFlags bool
}{
	"README.md": {
		{"config", config.Vars, true},
		{"connector", connector.Settings, false},
		{"ingest", settings.Join(tusupload.Settings, finalize.Settings), false},
		{"playback", grant.Settings, false},
		{"transcode", encode.Settings, false},
		{"audit", chain.Settings, false},
		{"pulse", pulseserver.Settings, false},
		{"identity", issuer.Settings, false},
	},
	"functions/upload/README.md":          {{"upload", tusupload.Settings, false}},
	"functions/upload-finalize/README.md": {{"finalize", finalize.Settings, false}},
	"functions/transcode/README.md":       {{"transcode", encode.Settings, false}},
	"functions/sign-url/README.md":        {{"playback", grant.Settings, false}},
	"functions/audit-append/README.md":    {{"audit", chain.Settings, false}},
	"functions/pulsevault/README.md":      {{"pulse", pulseserver.Settings, false}},
}

var settingsBlock = regexp.MustCompile(`(?s)(<!-- settings:([a-z]+) -->\n).*?(<!-- /settings -->)`)

// TestReadmeSettingsTables keeps the settings tables of the README and the
// functions' READMEs what the code declares: each is generated from its
// table (settings.Markdown). PULSEVAULT_UPDATE_DOCS=1 rewrites them.
func TestReadmeSettingsTables(t *testing.T) {
	for file, tables := range docTables {
		path := filepath.Join(repoRoot(t), file)
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for _, dt := range tables {
			var b bytes.Buffer
			settings.Markdown(&b, dt.table, dt.withFlags)
			want[dt.name] = b.String()
		}
		found := map[string]bool{}
		out := settingsBlock.ReplaceAllFunc(doc, func(m []byte) []byte {
			sub := settingsBlock.FindSubmatch(m)
			name := string(sub[2])
			found[name] = true
			md, ok := want[name]
			if !ok {
				t.Errorf("%s has a settings block %q that no table generates", file, name)
				return m
			}
			return []byte(string(sub[1]) + md + string(sub[3]))
		})
		for _, dt := range tables {
			if !found[dt.name] {
				t.Errorf("%s has no <!-- settings:%s --> block", file, dt.name)
			}
		}
		if bytes.Equal(out, doc) {
			continue
		}
		if os.Getenv("PULSEVAULT_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: settings tables regenerated", file)
			continue
		}
		t.Errorf("%s: settings tables differ from the code's declarations; run PULSEVAULT_UPDATE_DOCS=1 go test ./tests -run TestReadmeSettingsTables", file)
	}
}
