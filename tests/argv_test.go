package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

// TestNoStoreURLInChildArgv is the attack of a local user on the machine
// (single-machine or systemd install): every process's argv is readable by
// everyone (/proc/<pid>/cmdline), so a presigned URL handed to ffmpeg or
// ffprobe is a download link to the patient's original for as long as it
// is valid. A real upload goes through upload-finalize (ffprobe) and the
// whole transcode ladder (ffmpeg, posters) while this test, as that user,
// scans every process's argv: no argv may hold a signature, a credential or
// a URL of the store's buckets, no ffmpeg/ffprobe argv may name the store
// at all, and the loopback URL ffmpeg does get answers nobody but ffmpeg.
// A shim ahead of ffmpeg and ffprobe on the functions' PATH records every
// argv they are given, so none escapes the check between two scans.
func TestNoStoreURLInChildArgv(t *testing.T) {
	clip := ingestClip(t, t.TempDir(), "argv", testclip.Options{Width: 480, Height: 854, Seconds: 5})

	shim := t.TempDir()
	record := filepath.Join(shim, "argv.log")
	for _, name := range []string{"ffmpeg", "ffprobe"} {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		// One write per run, so runs side by side do not interleave lines.
		script := fmt.Sprintf("#!/bin/sh\nline=%s\nfor a in \"$@\"; do line=\"$line\t$a\"; done\nprintf '%%s\\n' \"$line\" >> %q\nexec %q \"$@\"\n",
			name, record, real)
		if err := os.WriteFile(filepath.Join(shim, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", shim+string(os.PathListSeparator)+os.Getenv("PATH"))

	s := startIngestStack(t)
	s.deployPipeline()
	cfg := s.env.Config
	store := strings.TrimPrefix(strings.TrimPrefix(cfg.S3Endpoint, "http://"), "https://")
	secret := func(argv string) string {
		for _, bad := range []string{"X-Amz-Signature", "X-Amz-Credential", store + "/" + cfg.MediaBucket, store + "/" + cfg.UploadsBucket} {
			if strings.Contains(argv, bad) {
				return bad
			}
		}
		return ""
	}

	// The local user: scans every process until the video is complete,
	// and tries every URL it finds in an ffmpeg's or ffprobe's argv.
	var (
		mu         sync.Mutex
		leaks      = map[string]bool{}
		tried      = map[string]int{} // URL → status (0: no answer)
		mediaProcs int
	)
	attacker := &http.Client{Timeout: 5 * time.Second}
	stop := make(chan struct{})
	var scanner sync.WaitGroup
	scanner.Go(func() {
		seen := map[int]bool{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				// Only this test's stack: packages tested side by side run
				// ffmpeg of their own against test servers.
				if err != nil || pid == os.Getpid() || !descendsFrom(pid, os.Getpid()) {
					continue
				}
				raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				if err != nil || len(raw) == 0 {
					continue
				}
				args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
				argv := strings.Join(args, " ")
				name := filepath.Base(args[0])
				mu.Lock()
				if bad := secret(argv); bad != "" {
					leaks[fmt.Sprintf("%s (pid %d) argv holds %q", name, pid, bad)] = true
				}
				media := name == "ffmpeg" || name == "ffprobe"
				if media && !seen[pid] {
					seen[pid] = true
					mediaProcs++
					if strings.Contains(argv, store) {
						leaks[fmt.Sprintf("%s (pid %d) argv names the store %s", name, pid, store)] = true
					}
				}
				mu.Unlock()
				if !media {
					continue
				}
				for _, a := range args {
					mu.Lock()
					_, done := tried[a]
					mu.Unlock()
					if !strings.HasPrefix(a, "http://") || done {
						continue
					}
					code := 0
					if res, err := attacker.Get(a); err == nil {
						code = res.StatusCode
						res.Body.Close()
					}
					mu.Lock()
					tried[a] = code
					mu.Unlock()
				}
			}
			time.Sleep(2 * time.Millisecond) // leave the CPU to the encoders
		}
	})

	id := s.mustUpload(clip)
	deadline := time.Now().Add(4 * time.Minute)
	for v, _, err := s.metas.Get(t.Context(), id); err != nil || v.Status != meta.Complete; v, _, err = s.metas.Get(t.Context(), id) {
		if err == nil && (v.Status == meta.Failed || v.Status == meta.Rejected) {
			t.Fatalf("video %s: %s %s", id, v.Status, v.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("video %s not complete after 4 min: %+v %v", id, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	scanner.Wait()

	recorded, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	for line := range strings.Lines(string(recorded)) {
		name, argv, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		runs[name]++
		if bad := secret(argv); bad != "" {
			t.Errorf("%s was started with %q in its argv", name, bad)
		} else if strings.Contains(argv, store) {
			t.Errorf("%s was started with the store's address %s in its argv", name, store)
		}
	}
	if runs["ffprobe"] < 1 || runs["ffmpeg"] < 3 {
		t.Fatalf("recorded runs %v: want ffprobe (finalize) and ffmpeg (renditions, posters)", runs)
	}
	mu.Lock()
	defer mu.Unlock()
	for l := range leaks {
		t.Error(l)
	}
	if mediaProcs == 0 || len(tried) == 0 {
		t.Fatalf("the scan saw %d ffmpeg/ffprobe processes and %d URLs in their argv; it cannot tell", mediaProcs, len(tried))
	}
	answers := map[int]int{}
	for u, code := range tried {
		answers[code]++
		if code/100 == 2 {
			u, _, _ = strings.Cut(u, "?")
			t.Errorf("another process read %s from a child's argv and fetched it: %d", u, code)
		}
	}
	t.Logf("recorded runs %v; the scan saw %d ffmpeg/ffprobe processes and fetched %d URLs from their argv: answers %v (0: no answer)",
		runs, mediaProcs, len(tried), answers)
}

// descendsFrom reports whether process pid is a descendant of ancestor,
// following parent pids in /proc/<pid>/stat.
func descendsFrom(pid, ancestor int) bool {
	for range 64 {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		// The command name is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			return false
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 2 {
			return false
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil || ppid <= 1 {
			return false
		}
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}
