package localstack

// Lookup of the helper programs that `make tools` builds into ./bin
// (versitygw, faas-cli), wherever PulseVault is started from.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// Settings is where FindBinary looks first.
var Settings = settings.Table{
	{Env: "PULSEVAULT_BIN_DIR", Usage: "where pulsevault finds versitygw and the other tools first (then next to the pulsevault binary, ./bin of the working directory or a parent, then PATH)"},
}

// FindBinary returns the path of the named program, looking in order at
// $PULSEVAULT_BIN_DIR, the directory of the running executable, a bin/
// directory in the working directory or any parent (the repository's, for
// tests), and finally $PATH.
func FindBinary(name string) (string, error) {
	var dirs []string
	vs, err := settings.FromEnv(Settings, os.Getenv)
	if err != nil {
		return "", err
	}
	if d := vs.String("PULSEVAULT_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, "bin"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: run `make tools` (it builds ./bin/%s) or set PULSEVAULT_BIN_DIR", name, name)
}
