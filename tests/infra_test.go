package tests

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// infraDir is the production manifests' folder (infra/tools is the tools module, not manifests).
func infraDir(t *testing.T) string { return filepath.Join(repoRoot(t), "infra") }

// infraFiles lists infra/ files with one of exts, infra/tools excluded.
func infraFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	root := infraDir(t)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == filepath.Join(root, "tools") {
			return filepath.SkipDir
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(p)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// yamlDocs decodes every document of a YAML stream.
func yamlDocs(r io.Reader) ([]map[string]any, error) {
	dec := yaml.NewDecoder(r)
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

func yamlFile(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs, err := yamlDocs(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return docs
}

// dig walks nested maps (and list indexes given as ints).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestInfraFilesParse(t *testing.T) {
	t.Parallel()
	n := 0
	for _, p := range infraFiles(t, ".yaml", ".yml") {
		if docs := yamlFile(t, p); len(docs) == 0 {
			t.Errorf("%s: no YAML document", p)
		}
		n++
	}
	for _, p := range infraFiles(t, ".json") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d YAML/JSON files under infra/", n)
	}
}

// stackFile is what the infra checks need from stack.yml.
type stackFile struct {
	Functions map[string]struct {
		Image       string            `yaml:"image"`
		Secrets     []string          `yaml:"secrets"`
		Annotations map[string]string `yaml:"annotations"`
		Limits      map[string]string `yaml:"limits"`
		BuildArgs   map[string]string `yaml:"build_args"`
	} `yaml:"functions"`
}

func readStack(t *testing.T) stackFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s stackFile
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Functions) == 0 {
		t.Fatal("stack.yml declares no function")
	}
	return s
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// readStackEnv returns each stack.yml function's environment.
func readStackEnv(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Functions map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"functions"`
	}
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for n, f := range s.Functions {
		out[n] = f.Environment
	}
	return out
}
