package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/testutil/testclip"

	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// vitalsPlaybackTTL is short so the browser test crosses several signed-URL
// expiries; sign-url allows 1s–300s.
const vitalsPlaybackTTL = 6

// buildVitals runs npm ci (when node_modules is missing) and next build (when
// vitals/out is missing or older than a source file), so a warm run costs nothing.
func buildVitals(t *testing.T, dir string) {
	t.Helper()
	tier.Integration(t, "npm (next build) and Chromium")
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed: Node 20 is needed to build vitals/")
	}
	out := filepath.Join(dir, "out", "index.html")
	built := time.Time{}
	if fi, err := os.Stat(out); err == nil {
		built = fi.ModTime()
	}
	stale := built.IsZero()
	for _, src := range []string{"app", "components", "lib", "public", "package-lock.json", "next.config.ts", "postcss.config.mjs"} {
		_ = filepath.WalkDir(filepath.Join(dir, src), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil && fi.ModTime().After(built) {
					stale = true
				}
			}
			return nil
		})
	}
	if !stale {
		return
	}
	run := func(args ...string) {
		cmd := exec.Command("npm", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NEXT_TELEMETRY_DISABLED=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm %s in vitals/: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		run("ci", "--no-audit", "--no-fund")
	}
	start := time.Now()
	run("run", "build")
	t.Logf("built vitals/out in %s", time.Since(start).Round(time.Second))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// devStack is a running `pulsevault dev` and what its banner says.
type devStack struct {
	public, gateway, token, data string
	stderr                       *testenv.Buffer
}

func startDev(t *testing.T, bin, root string, publicPort int, env ...string) *devStack {
	t.Helper()
	data := t.TempDir()
	cmd := exec.Command(bin, "dev", "--data-dir", data, "--nats-port", "0", "--s3-port", "0", "--gateway-port", "0",
		"--public-port", strconv.Itoa(publicPort), "--stack-file", "stack.yml")
	cmd.Dir = root // dev serves vitals/out relative to its working directory
	cmd.Env = append(os.Environ(), env...)
	proc := testenv.StartProc(t, cmd, testenv.ProcOptions{Name: "dev", Ready: 90 * time.Second, Grace: 10 * time.Second})
	d := &devStack{data: data, stderr: proc.Stderr,
		public: proc.Value("public"), gateway: proc.Value("gateway"), token: proc.Value("login", "token")}
	if d.public == "" || d.gateway == "" || d.token == "" {
		t.Fatalf("banner lacks public, gateway or login token")
	}
	return d
}

// TestVitals builds the PWA, starts the whole local stack with it, checks how
// the Go server serves it, then drives it in headless Chromium: sign in,
// upload through the UI, processing → playing, next video, signed-URL expiry,
// installability and the offline shell.
func TestVitals(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("chromium not installed (apt-get install chromium fonts-liberation)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	vitals := filepath.Join(root, "vitals")
	buildVitals(t, vitals)
	bin := buildPulsevault(t)

	port := freePort(t)
	origin := "http://127.0.0.1:" + strconv.Itoa(port)
	dev := startDev(t, bin, root, port,
		"VITALS_ORIGIN="+origin, // the upload function's CORS origins
		"PLAYBACK_TTL="+strconv.Itoa(vitalsPlaybackTTL)+"s")
	if dev.public != origin {
		t.Fatalf("public origin %s, want %s", dev.public, origin)
	}

	t.Run("served", func(t *testing.T) {
		cases := []struct{ path, ctype string }{
			{"/", "text/html"},
			{"/watch/", "text/html"},
			{"/manifest.webmanifest", "application/manifest+json"},
			{"/sw.js", "text/javascript"},
			{"/icons/icon-192.png", "image/png"},
			{"/icons/icon-512.png", "image/png"},
		}
		// One of the app's content-hashed scripts too.
		index, err := os.ReadFile(filepath.Join(vitals, "out", "index.html"))
		if err != nil {
			t.Fatal(err)
		}
		js := regexp.MustCompile(`/_next/static/[^"]+\.js`).Find(index)
		if js == nil {
			t.Fatal("index.html references no /_next/static script")
		}
		cases = append(cases, struct{ path, ctype string }{string(js), "text/javascript"})
		for _, c := range cases {
			resp, err := http.Get(dev.public + c.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if resp.StatusCode != 200 || mt != c.ctype {
				t.Errorf("GET %s: %d %q, want 200 %s", c.path, resp.StatusCode, mt, c.ctype)
			}
		}
		// The API still wins over the static files on its own paths.
		resp, err := http.Get(dev.public + "/api/videos")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /api/videos without a token: %d, want 401", resp.StatusCode)
		}
	})

	// The file names stand in for PHI: they must not reach any log.
	clips := t.TempDir()
	clipA := filepath.Join(clips, "jane-doe-gait-A.mp4")
	clipB := filepath.Join(clips, "jane-doe-gait-B.mp4")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, p := range []string{clipA, clipB} {
		if err := testclip.Make(ctx, p, testclip.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	artifacts := os.Getenv("VITALS_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(vitals, "test-results")
	}
	artifacts, _ = filepath.Abs(artifacts)

	cmd := exec.CommandContext(ctx, "node", "e2e/run.mjs")
	cmd.Dir = vitals
	cmd.Env = append(os.Environ(),
		"BASE_URL="+dev.public, "TOKEN="+dev.token, "CLIP_A="+clipA, "CLIP_B="+clipB,
		"ARTIFACTS="+artifacts, "CHROMIUM="+chromium,
		"TTL_S="+strconv.Itoa(vitalsPlaybackTTL))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("browser run took %s; screenshots in %s", time.Since(start).Round(time.Second), artifacts)
	var res struct {
		Steps               []string                                          `json:"steps"`
		Error               string                                            `json:"error"`
		TTFF                struct{ FirstMs, NextMs, AfterUploadMs *float64 } `json:"ttff"`
		ProgressA           []int                                             `json:"progressA"`
		StatusesSeen        []string                                          `json:"statusesSeen"`
		NextVideoTokens     int                                               `json:"nextVideoTokens"`
		PlayedAcrossExpiryS float64                                           `json:"playedAcrossExpiryS"`
		MediaForbidden      []string                                          `json:"mediaForbidden"`
		InstallabilityErrs  *[]string                                         `json:"installabilityErrors"`
		ManifestErrors      []string                                          `json:"manifestErrors"`
		OfflineShell        string                                            `json:"offlineShell"`
		PageErrors          []string                                          `json:"pageErrors"`
		StorageDuring       []string                                          `json:"storageDuringUploads"`
		StorageAfter        []string                                          `json:"storageAfterUploads"`
	}
	last := strings.TrimSpace(stdout.String())
	last = last[strings.LastIndexByte(last, '\n')+1:]
	if err := json.Unmarshal([]byte(last), &res); err != nil {
		t.Fatalf("e2e: %v; no result line (%v)\nstdout:\n%s\nstderr:\n%s", runErr, err, stdout.String(), stderr.String())
	}
	if runErr != nil {
		t.Fatalf("e2e failed at %q: %s\nresult: %s\nstderr:\n%s\ndev stderr (tail):\n%s", res.Steps[len(res.Steps)-1], res.Error, last, stderr.String(), tail(dev.stderr.String(), 3000))
	}
	ms := func(p *float64) string {
		if p == nil {
			return "n/a"
		}
		return strconv.FormatFloat(*p, 'f', 0, 64) + " ms"
	}
	t.Logf("time to first frame: first feed video %s (fresh load), next video after a swipe %s, just-processed upload %s",
		ms(res.TTFF.FirstMs), ms(res.TTFF.NextMs), ms(res.TTFF.AfterUploadMs))
	t.Logf("upload progress values seen %v; statuses seen %v; next video used %d tokens, played %.1f s across %ds expiries",
		res.ProgressA, res.StatusesSeen, res.NextVideoTokens, res.PlayedAcrossExpiryS, vitalsPlaybackTTL)

	if len(res.ProgressA) == 0 || res.ProgressA[len(res.ProgressA)-1] != 100 {
		t.Errorf("progress bar values %v never reached 100", res.ProgressA)
	}
	if !contains(res.StatusesSeen, "processing") {
		t.Errorf("the upload never showed as processing; statuses seen %v", res.StatusesSeen)
	}
	if res.TTFF.FirstMs == nil || res.TTFF.NextMs == nil {
		t.Errorf("no time-to-first-frame measured")
	}
	if res.NextVideoTokens < 2 || len(res.MediaForbidden) > 0 {
		t.Errorf("token refresh: %d tokens, 403s %v", res.NextVideoTokens, res.MediaForbidden)
	}
	if res.InstallabilityErrs == nil || len(*res.InstallabilityErrs) > 0 {
		t.Errorf("installability errors: %v (manifest errors %v)", res.InstallabilityErrs, res.ManifestErrors)
	}
	if res.OfflineShell != "Vitals" {
		t.Errorf("offline reload shows %q, want the Vitals shell", res.OfflineShell)
	}
	if len(res.PageErrors) > 0 {
		t.Errorf("uncaught page errors: %v", res.PageErrors)
	}
	// Regression (issue 15, finding 7): web storage never holds a file name, tus
	// resume entries live in sessionStorage only, and a finished upload leaves none.
	resumeSeen := 0
	for _, e := range res.StorageDuring {
		if strings.Contains(e, "jane-doe") {
			t.Errorf("web storage held a file name during an upload: %q", e)
		}
		if strings.Contains(e, "tus::") {
			resumeSeen++
			if !strings.HasPrefix(e, "session:pulsevault.tus::") {
				t.Errorf("a tus resume entry outside sessionStorage: %q", e)
			}
		}
	}
	for _, e := range res.StorageAfter {
		if strings.Contains(e, "tus::") || strings.Contains(e, "jane-doe") {
			t.Errorf("web storage after the uploads finished: %q", e)
		}
	}
	t.Logf("web storage: %d entries seen during uploads (%d tus resume entries), %d after", len(res.StorageDuring), resumeSeen, len(res.StorageAfter))
	// The player's bytes came from the store through the public origin; the
	// media function only checked tokens.
	fm := scrapeMetrics(t, dev.gateway+"/function/media/_/metrics")
	if off, own := total(fm["media_offloaded_total"]), total(fm["media_bytes_served_total"]); off == 0 || own != 0 {
		t.Errorf("media: %v GETs offloaded and %v bytes served by the function; want the origin to serve them all", off, own)
	}

	// No PHI in logs: the uploaded file names appear nowhere.
	logs := dev.stderr.String()
	_ = filepath.WalkDir(filepath.Join(dev.data, "logs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			logs += string(b)
		}
		return nil
	})
	if strings.Contains(logs, "jane-doe") {
		t.Errorf("a file name reached the logs")
	}
	if strings.Contains(logs, dev.token) {
		t.Errorf("the login token reached the logs")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
