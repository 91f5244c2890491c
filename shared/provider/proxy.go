package provider

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	fhttputil "github.com/openfaas/faas-provider/httputil"
	"github.com/openfaas/faas-provider/proxy"

	"github.com/mieweb/pulsevault/shared/copybuf"
)

// newProxy forwards /function/NAME/PATH to a replica as faas-provider's
// proxy does (the same upstream URL, X-Forwarded-Host/For, error answers
// and default Content-Type; no deadline on event streams), but faster on
// the media and upload paths: request bodies keep their Content-Length
// (faas-provider sends them chunked), response bodies are copied through
// pooled 256 KiB buffers instead of 32 KiB ones, and the connections to
// replicas stay open longer with larger socket buffers.
func newProxy(timeout time.Duration, res proxy.BaseURLResolver) http.HandlerFunc {
	rp := &httputil.ReverseProxy{
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: 1500 * time.Millisecond,
			WriteBufferSize:       64 << 10,
			ReadBufferSize:        64 << 10,
			DisableCompression:    true,
		},
		BufferPool: copybuf.Pool{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.Context().Value(upstreamKey{}).(*url.URL)
			pr.Out.Host = "" // the replica's address, as a fresh request would have
			// Rewrite runs with the X-Forwarded-* headers removed; the
			// functions (tusd's upload URLs) rely on what the client or
			// the public origin sent, so they pass through as before.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v := pr.In.Header.Values(h); len(v) > 0 {
					pr.Out.Header[h] = append([]string(nil), v...)
				}
			}
			if pr.Out.Header.Get("X-Forwarded-Host") == "" && pr.In.Host != "" {
				pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
			}
			if pr.Out.Header.Get("X-Forwarded-For") == "" {
				pr.Out.Header.Set("X-Forwarded-For", pr.In.RemoteAddr)
			}
		},
		ModifyResponse: func(res *http.Response) error {
			if res.Header.Get("Content-Type") == "" {
				ct := res.Request.Header.Get("Content-Type")
				if ct == "" {
					ct = "text/plain"
				}
				res.Header.Set("Content-Type", ct)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Add("X-OpenFaaS-Internal", "proxy")
			fhttputil.Errorf(w, http.StatusInternalServerError, "Can't reach service for: %s.", mux.Vars(r)["name"])
		},
	}
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodGet, http.MethodOptions, http.MethodHead:
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		vars := mux.Vars(r)
		base, err := res.Resolve(vars["name"])
		if err != nil {
			w.Header().Add("X-OpenFaaS-Internal", "proxy")
			fhttputil.Errorf(w, http.StatusServiceUnavailable, "No endpoints available for: %s.", vars["name"])
			return
		}
		host := base.Host
		if base.Port() == "" {
			host += ":8080" // the watchdog's port, as faas-provider assumes
		}
		up := &url.URL{Scheme: base.Scheme, Host: host, Path: vars["params"], RawQuery: r.URL.RawQuery}
		// The upstream URL is built by faas-provider's rules: parse its
		// string form so Path and RawPath agree as they did there.
		if u, err := url.Parse(up.String()); err == nil {
			up = u
		}
		ctx := context.WithValue(r.Context(), upstreamKey{}, up)
		if !streaming(r) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
	}
}

type upstreamKey struct{}

// streaming is faas-provider's test for a response that may last longer
// than an invocation: event streams, NDJSON and WebSockets.
func streaming(r *http.Request) bool {
	accept := strings.ToLower(r.Header.Get("Accept"))
	return strings.Contains(accept, "text/event-stream") || strings.Contains(accept, "application/x-ndjson") ||
		r.Header.Get("Upgrade") == "websocket"
}
