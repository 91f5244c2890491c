package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The function image: non-root, no shell in the entrypoint, distroless unless FFmpeg is needed.
func TestFunctionDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "templates", "pulsevault-go", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		from, name string
		lines      []string
	}
	var stages []stage
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if strings.EqualFold(f[0], "FROM") {
			s := stage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
		}
	}
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	if len(stages) == 0 {
		t.Fatal("no FROM")
	}
	final := stages[len(stages)-1]
	if final.from != "runtime-${FFMPEG}" {
		t.Fatalf("final stage FROM %s: want runtime-${FFMPEG}", final.from)
	}
	if s, ok := byName["runtime-false"]; !ok || !strings.HasPrefix(s.from, "gcr.io/distroless/static") {
		t.Errorf("runtime-false must be distroless static (no shell): %+v", s)
	}
	if s, ok := byName["runtime-true"]; !ok || !strings.Contains(strings.Join(s.lines, "\n"), "ffmpeg") {
		t.Errorf("runtime-true must install ffmpeg: %+v", s)
	}
	var user, entry string
	for _, l := range final.lines {
		switch f := strings.Fields(l); strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT", "CMD":
			entry = strings.TrimSpace(l[len(f[0]):])
			if strings.Contains(entry, "/bin/sh") || !strings.HasPrefix(entry, "[") {
				t.Errorf("%s must be exec form without a shell: %s", f[0], entry)
			}
		case "RUN":
			t.Errorf("final stage runs %q: the distroless runtime has no shell to run it", l)
		}
	}
	var args []string
	if err := json.Unmarshal([]byte(entry), &args); err != nil || len(args) < 2 || args[0] != "/usr/bin/pulsevault" || args[1] != "fn" {
		t.Errorf("entrypoint %q: want [\"/usr/bin/pulsevault\", \"fn\", ...] (%v)", entry, err)
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root uid (Kubernetes runAsNonRoot needs a number)", user)
	}
	// stack.yml asks for FFmpeg only with the values the Dockerfile has stages for.
	for n, f := range readStack(t).Functions {
		if v, ok := f.BuildArgs["FFMPEG"]; ok {
			if _, has := byName["runtime-"+v]; !has {
				t.Errorf("stack.yml %s: FFMPEG=%q has no runtime-%s stage", n, v, v)
			}
		}
	}
}
