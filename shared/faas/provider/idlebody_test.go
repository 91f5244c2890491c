package provider

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// stallAfter yields data, then blocks until release is closed.
type stallAfter struct {
	data    *strings.Reader
	release chan struct{}
}

func (s *stallAfter) Read(p []byte) (int, error) {
	if s.data.Len() > 0 {
		return s.data.Read(p)
	}
	<-s.release
	return 0, io.EOF
}

// A client that stops mid-body behind a reverse proxy (as the gateway
// is): the replica gives up and answers, and the client gets that answer
// once the gateway's idle read deadline passes, instead of never.
func TestIdleBodyEndsAStalledRequest(t *testing.T) {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1024)
		_, _ = io.ReadFull(r.Body, buf) // what the client sent, then give up, as tusd does after its network timeout
		http.Error(w, "timed out", http.StatusInternalServerError)
	}))
	defer replica.Close()
	u, _ := url.Parse(replica.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idleBody(w, r, 2*time.Second)
		rp.ServeHTTP(w, r)
	}))
	defer gw.Close()

	release := make(chan struct{})
	defer close(release)
	req, _ := http.NewRequest(http.MethodPatch, gw.URL, &stallAfter{data: strings.NewReader(strings.Repeat("x", 1024)), release: release})
	req.ContentLength = 1 << 20
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("stalled request ended after %s: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(time.Minute):
		t.Fatal("a request whose client stopped sending was still open after a minute (idle timeout 2s)")
	}
}

// A body sent in full clears the deadline: a slow answer is not cut.
func TestIdleBodyKeepsASlowAnswer(t *testing.T) {
	tier.Slow(t, "a 3 s answer past a 1 s idle timeout")
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idleBody(w, r, time.Second)
		b, _ := io.ReadAll(r.Body)
		select {
		case <-time.After(3 * time.Second): // longer than the idle timeout
		case <-r.Context().Done():
			t.Error("the request context ended after the body was read in full")
			return
		}
		_, _ = w.Write(b)
	}))
	defer gw.Close()
	res, err := http.Post(gw.URL, "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, _ := io.ReadAll(res.Body); string(b) != "hello" {
		t.Fatalf("answer %q", b)
	}
}
