package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd units parse and, where systemd-analyze exists, verify (with the unit's binaries
// pointed at the ones built here).
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(infraDir(t), "systemd")
	units, _ := filepath.Glob(filepath.Join(dir, "*.service"))
	if len(units) < 4 {
		t.Fatalf("want bootstrap, provider, deploy and connector units, have %v", units)
	}
	tmp := t.TempDir()
	bin := buildPulsevault(t)
	for _, u := range append(units, filepath.Join(dir, "pulsevault.target")) {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]map[string][]string{}
		var cur string
		for i, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case l == "" || strings.HasPrefix(l, "#"):
			case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
				cur = l[1 : len(l)-1]
				sections[cur] = map[string][]string{}
			default:
				k, v, ok := strings.Cut(l, "=")
				if !ok || cur == "" {
					t.Fatalf("%s:%d: not key=value in a section: %q", u, i+1, l)
				}
				sections[cur][k] = append(sections[cur][k], v)
			}
		}
		if sections["Unit"]["Description"] == nil || sections["Install"]["WantedBy"] == nil {
			t.Errorf("%s: needs Description and WantedBy", u)
		}
		if svc, ok := sections["Service"]; ok {
			if len(svc["ExecStart"]) == 0 || svc["User"] == nil || svc["User"][0] == "root" {
				t.Errorf("%s: needs ExecStart and a non-root User", u)
			}
			for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "PrivateTmp"} {
				if svc[k] == nil {
					t.Errorf("%s: no %s hardening", u, k)
				}
			}
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/pulsevault", bin)
		s = strings.ReplaceAll(s, "/usr/local/bin/faas-cli", faasCLI(t))
		if err := os.WriteFile(filepath.Join(tmp, filepath.Base(u)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units parsed only")
		return
	}
	files, _ := filepath.Glob(filepath.Join(tmp, "*"))
	cmd := exec.Command(sa, append([]string{"verify"}, files...)...)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
