package encode

import (
	"fmt"
	"os"
	"syscall"
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
