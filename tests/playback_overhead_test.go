package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// childURL finds the direct address of a function's replica among the
// provider's children (its port= environment).
func childURL(t *testing.T, p *providerCmd, fn string) string {
	t.Helper()
	for _, pid := range descendants(p.cmd.Process.Pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !bytes.HasSuffix(bytes.TrimRight(cmdline, "\x00"), []byte("\x00fn\x00"+fn)) {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("port=")); ok {
				return "http://" + string(v)
			}
		}
	}
	t.Fatalf("no replica of %s found", fn)
	return ""
}

// rate runs n requests with workers clients and returns requests/s and MB/s.
func rate(t *testing.T, n, workers int, do func() (int64, error)) (float64, float64) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	var total int64
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				b, err := do()
				mu.Lock()
				total += b
				if err != nil {
					failed = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
	d := time.Since(start).Seconds()
	return float64(n) / d, float64(total) / d / 1e6
}

// TestPlaybackOverhead measures (does not assert), each against its
// baseline in the same run: media GET throughput through the token check
// against a presigned S3 GET of the same object; sign-url requests/s
// through the provider against its child called directly; and listing
// 10,000 videos (cold and warm) against the bare LIST of their keys.
func TestPlaybackOverhead(t *testing.T) {
	if os.Getenv("PULSEVAULT_BENCH") == "" {
		t.Skip("a measurement, not a check: run by `make bench` (PULSEVAULT_BENCH=1)")
	}
	ctx := context.Background()
	s := startPlayback(t, "300s")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	// A 4 MiB object in the video's rendition folder.
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	key := topology.VideoPrefix(s.video) + "hls/360p/big.m4s"
	ret := storage.Compliance(1)
	if _, err := s.st.PutBytes(ctx, s.bucket, key, big, storage.PutOptions{Retention: &ret}); err != nil {
		t.Fatal(err)
	}
	owner := s.jwt(t, "uploader-1")
	body := fmt.Sprintf(`{"video":%q}`, s.video)
	signDirect := childURL(t, s.p, "sign-url")
	mediaDirect := childURL(t, s.p, "media")
	getAll := func(url string) func() (int64, error) {
		return func() (int64, error) {
			res, err := client.Get(url)
			if err != nil {
				return 0, err
			}
			defer res.Body.Close()
			n, err := io.Copy(io.Discard, res.Body)
			if err == nil && res.StatusCode != 200 {
				err = fmt.Errorf("%s: status %d", url, res.StatusCode)
			}
			return n, err
		}
	}
	for _, workers := range []int{1, 8} {
		_, g, _ := signURL(t, client, s.p.url+"/function/sign-url", owner, body)
		tokPath := strings.TrimPrefix(strings.TrimSuffix(g.URL, "hls/master.m3u8"), "/media") + "hls/360p/big.m4s"
		presigned, err := s.st.PresignGet(ctx, s.bucket, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		rate(t, 20, workers, getAll(presigned.String())) // warm up
		_, s3MB := rate(t, n, workers, getAll(presigned.String()))
		_, mediaMB := rate(t, n, workers, getAll(mediaDirect+tokPath))
		_, gwMB := rate(t, n, workers, getAll(s.p.url+"/function/media"+tokPath))
		t.Logf("media GET 4 MiB, %d client(s): presigned S3 %.0f MB/s, media (token check) %.0f MB/s (%.2fx), through the gateway %.0f MB/s (%.2fx)",
			workers, s3MB, mediaMB, mediaMB/s3MB, gwMB, gwMB/s3MB)
	}
	post := func(url string) func() (int64, error) {
		return func() (int64, error) {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+owner)
			res, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			defer res.Body.Close()
			n, _ := io.Copy(io.Discard, res.Body)
			if res.StatusCode != 200 {
				return n, fmt.Errorf("sign-url: status %d", res.StatusCode)
			}
			return n, nil
		}
	}
	for _, workers := range []int{1, 16} {
		const n = 1000
		rate(t, 100, workers, post(signDirect+"/"))
		d, _ := rate(t, n, workers, post(signDirect+"/"))
		g, _ := rate(t, n, workers, post(s.p.url+"/function/sign-url"))
		t.Logf("sign-url, %2d client(s): direct %6.0f req/s, through the provider %6.0f req/s (%.2fx)", workers, d, g, g/d)
	}

	// 10,000 videos.
	videos := 10000
	if n, err := strconv.Atoi(os.Getenv("PULSEVAULT_BENCH_VIDEOS")); err == nil && n > 0 {
		videos = n
	}
	ms := meta.NewStore(s.st, s.bucket)
	start := time.Now()
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				v := &meta.Video{ID: uuid.NewString(), Status: meta.Ready, Uploader: fmt.Sprintf("user-%d", i%50),
					Created: time.Unix(1_700_000_000+int64(i), 0), Probe: &meta.Probe{Duration: 5, Width: 360, Height: 640}}
				if err := ms.Create(ctx, v); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range videos {
		ids <- i
	}
	close(ids)
	wg.Wait()
	t.Logf("staged %d meta.json in %s", videos, time.Since(start).Round(time.Millisecond))
	listOnly := func() {
		for _, err := range s.st.List(ctx, s.bucket, "videos/") {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	start = time.Now()
	listOnly()
	bare := time.Since(start)
	videosURL := s.p.url + "/function/videos/?limit=20"
	fetch := func(jwt string) (time.Duration, int) {
		req, _ := http.NewRequest(http.MethodGet, videosURL, nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var l struct{ Videos []json.RawMessage }
		_ = json.Unmarshal(raw, &l)
		if res.StatusCode != 200 {
			b, _ := os.ReadFile(filepath.Join(s.p.data, "logs", "functions", "videos.log"))
			t.Fatalf("videos: %d %s\n%s", res.StatusCode, raw, b)
		}
		return time.Since(start), len(l.Videos)
	}
	cold, n1 := fetch(s.jwt(t, "user-7"))
	warm, n2 := fetch(s.jwt(t, "user-7"))
	admin, n3 := fetch(s.jwt(t, "auditor", grant.AdminRole))
	t.Logf("listing %d videos (first page of 20): bare LIST of the keys %s; videos fn cold (GET every meta.json) %s (%.1fx), warm (ETag cache) %s (%.1fx), admin warm %s; pages %d/%d/%d",
		videos, bare.Round(time.Millisecond), cold.Round(time.Millisecond), cold.Seconds()/bare.Seconds(),
		warm.Round(time.Millisecond), warm.Seconds()/bare.Seconds(), admin.Round(time.Millisecond), n1, n2, n3)
}
