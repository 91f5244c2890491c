package testenv

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Presigner is the part of storage.Store that ServeBucket needs (testenv
// cannot import storage: storage's own tests use testenv).
type Presigner interface {
	PresignGet(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error)
}

// ServeBucket serves bucket over plain HTTP on a loopback port by presigning
// each request's key and forwarding the GET (Range included) to the store:
// ffmpeg and ffprobe can then follow a manifest's relative URIs, which
// presigned URLs alone cannot give them (in production the media
// function's path token does).
func ServeBucket(t testing.TB, st Presigner, bucket string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := st.PresignGet(r.Context(), bucket, strings.TrimPrefix(r.URL.Path, "/"), time.Minute)
		if err != nil {
			http.Error(w, "presign", http.StatusInternalServerError)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
		if rg := r.Header.Get("Range"); rg != "" {
			req.Header.Set("Range", rg)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, "store", http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		for _, h := range []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges"} {
			if v := res.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}
