package encode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mieweb/pulsevault/shared/platform/loopback"
)

// privateDir checks that dir, the shared parent of every job's scratch
// directory, is a real directory owned by this user and closed to others.
// The default parent is in the system temp dir, where another local user
// could have created it first (or a symlink by its name) to read or swap
// the decoded video of a job.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("transcode: scratch root %s is not a directory (a symlink?)", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("transcode: scratch root %s belongs to another user", dir)
	case fi.Mode().Perm()&0o077 != 0:
		// Ours, but open to others (an older run, a umask): close it.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("transcode: scratch root %s: %w", dir, err)
		}
	}
	return nil
}

// prepare makes a job's scratch directory (dir, with out inside for
// ffmpeg's output) and finds the original. The caller removes dir.
func (w *Worker) prepare(ctx context.Context, original string) (dir, out string, src loopback.Object, err error) {
	if dir, err = w.scratch(); err != nil {
		return "", "", src, &Error{Code: CodeFailed, Err: err}
	}
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", "", src, &Error{Code: CodeFailed, Err: err}
	}
	if src, err = loopback.Stored(ctx, w.Store, w.Bucket, original); err != nil {
		os.RemoveAll(dir)
		return "", "", src, &Error{Code: CodeUnreachable, Err: err} // as ffmpeg failing to read it would be
	}
	src.Refused = w.metrics().loopbackRefused
	return dir, out, src, nil
}

// serve serves the original to the one ffmpeg process fn starts with the
// input and bind it is given (no presigned URL in ffmpeg's argv): from the
// store, over loopback, until fn returns.
func serve(ctx context.Context, src loopback.Object, fn func(input string, bind func(int) error) error) error {
	srv, err := loopback.Serve(ctx, src)
	if err != nil {
		return &Error{Code: CodeFailed, Err: err}
	}
	defer srv.Close()
	return fn(srv.URL(), srv.Bind)
}

// scratch makes this job's temp dir, first removing those of processes
// that died without cleaning up (a SIGKILLed replica).
func (w *Worker) scratch() (string, error) {
	base := w.Config.TempDir
	if base == "" {
		base = os.TempDir()
	}
	root := filepath.Join(base, "pulsevault-transcode")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	if err := privateDir(root); err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			pid, _, ok := strings.Cut(e.Name(), "-")
			n, err := strconv.Atoi(pid)
			if ok && err == nil && n > 0 && n != os.Getpid() && syscall.Kill(n, 0) == syscall.ESRCH {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	return os.MkdirTemp(root, strconv.Itoa(os.Getpid())+"-")
}
