package encode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/media/pin"
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
// ffmpeg's output) and finds the original: the version meta.json pins,
// whatever was written over its key since (that is counted and audited,
// never read). The caller removes dir.
func (w *Worker) prepare(ctx context.Context, id string, original meta.Original) (dir, out string, src loopback.Object, err error) {
	if err := w.checkPinned(ctx, id, &original); err != nil {
		return "", "", src, &Error{Code: CodeStore, Err: err}
	}
	if dir, err = w.scratch(); err != nil {
		return "", "", src, &Error{Code: CodeFailed, Err: err}
	}
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", "", src, &Error{Code: CodeFailed, Err: err}
	}
	if src, err = loopback.StoredVersion(ctx, w.Store, w.Bucket, original.Key, original.VersionID); err != nil {
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

// checkPinned counts and audits a version of the original other than the
// pinned one standing as the latest. The audit event's id is derived from
// the video and that version, so every job of the video reports one
// overwrite once.
func (w *Worker) checkPinned(ctx context.Context, id string, original *meta.Original) error {
	sh, err := pin.Check(ctx, w.Store, w.Bucket, original)
	if err != nil || sh == nil {
		return err
	}
	w.metrics().shadowed.WithLabelValues(sh.Reason).Inc()
	w.log().WarnContext(ctx, "transcode: the original has a newer version than the pinned one; reading the pinned version", "video", id, "reason", sh.Reason)
	return w.Audit.Publish(ctx, event.Event{
		ID:     eventID(id, "original", "shadowed:"+sh.VersionID),
		Action: event.OriginalShadowed, Object: id, Outcome: event.Denied, Reason: sh.Reason,
	})
}
