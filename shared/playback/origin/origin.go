// Package origin is the public origin: the one listener browsers and
// players talk to. It forwards
//
//	/media/<token>/...  → GATEWAY_URL/function/media/<token>/...
//	/api/sign-url       → GATEWAY_URL/function/sign-url
//	/api/videos[/...]   → GATEWAY_URL/function/videos[/...]
//	/api/events         → GATEWAY_URL/function/events
//	/api/upload/...     → GATEWAY_URL/function/upload/...
//
// and everything else to an optional static handler (Vitals). Paths are
// forwarded as they arrived, still escaped, so the media function sees (and
// refuses) encoded traversal itself. Responses are streamed, server-sent
// events flushed at once. It serves HTTP/1.1 and, over TLS, HTTP/2.
//
// A function's own endpoints (fnrun's /metrics and /_/health, media's
// /_/metrics) are never reached from here, however spelled: they are for
// the gateway and Prometheus. Clients' forwarding headers are replaced by
// this origin's, and a header over MaxHeaderBytes gets 431.
//
// With Options.Store set, media bytes skip the gateway and the function:
// the router asks the media function to offload (topology.HeaderOffload)
// and serves the X-Accel-Redirect it answers from the store itself, as
// nginx does in production (infra/nginx).
package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/copybuf"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Options configures Handler and Serve.
type Options struct {
	GatewayURL string       // http(s)://host:port of the OpenFaaS gateway (or pulsevault provider)
	Static     http.Handler // serves every other path; nil answers 404
	Logger     *slog.Logger
	// Store is the S3 endpoint (http(s)://host:port) the media function
	// presigns for; set, media bytes are fetched from it directly.
	Store string
	// Transport reaches the gateway and the store; default a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// offloadPrefix is the internal prefix media's X-Accel-Redirect answers
// start with; nginx's internal location has the same name.
const offloadPrefix = "/_pulsevault_s3/"

// routes maps a public path prefix to a function: the path must equal the
// prefix or continue with "/", and for an exact route (a function without
// sub-paths) equal it. The same routes as infra/nginx/pulsevault.conf.
var routes = []struct {
	prefix, function string
	exact            bool
}{
	{"/media/", "media", false},
	{"/api/sign-url", "sign-url", true},
	{"/api/videos", "videos", false},
	{"/api/events", "events", true},
	{"/api/upload/", "upload", false},
}

// MaxHeaderBytes bounds a request's header, as nginx's default
// large_client_header_buffers (4 × 8k) does in production: larger gets 431.
// Bearer tokens and tus metadata take a few KiB.
const MaxHeaderBytes = 32 << 10

// internal reports whether rest, the path after a route's prefix (still
// escaped), reaches a function's own endpoints instead of its handler:
// fnrun's /metrics and /_/health, media's /_/metrics, for the gateway and
// Prometheus only. rest is judged decoded and with empty segments dropped,
// as the function may see it after the gateway; a dot segment counts too,
// since no public path has one and something in between might resolve it.
func internal(rest string) bool {
	p, err := url.PathUnescape(rest)
	if err != nil {
		return true
	}
	segs := strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
	if len(segs) > 0 && (segs[0] == "metrics" || segs[0] == "_") {
		return true
	}
	return slices.Contains(segs, ".") || slices.Contains(segs, "..")
}

// Handler returns the public router.
func Handler(o Options) (http.Handler, error) {
	gw, err := url.Parse(o.GatewayURL)
	if err != nil || (gw.Scheme != "http" && gw.Scheme != "https") || gw.Host == "" || gw.RawQuery != "" || gw.User != nil {
		return nil, fmt.Errorf("origin: gateway URL %q must be http(s)://host:port without credentials or query", o.GatewayURL)
	}
	gw.Path = strings.TrimRight(gw.Path, "/")
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var store *url.URL
	if o.Store != "" {
		store, err = url.Parse(o.Store)
		if err != nil || (store.Scheme != "http" && store.Scheme != "https") || store.Host == "" || store.User != nil || strings.Trim(store.Path, "/") != "" {
			return nil, fmt.Errorf("origin: store URL %q must be http(s)://host:port", o.Store)
		}
	}
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Every player request is one to the gateway (and, offloaded, one
		// to the store): keep as many connections as players in flight,
		// not the default two.
		t.MaxIdleConnsPerHost = 256
		tr = t
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			fn, rest := pr.In.Context().Value(fnKey{}).(string), pr.In.Context().Value(restKey{}).(string)
			out := *gw
			out.Path = gw.Path + "/function/" + fn + mustUnescape(rest)
			out.RawPath = gw.Path + "/function/" + fn + rest
			out.RawQuery = pr.In.URL.RawQuery
			pr.Out.URL = &out
			pr.Out.Host = gw.Host
			// The forwarding headers are this origin's alone (ReverseProxy
			// drops Forwarded and X-Forwarded-For/-Host/-Proto; the rest
			// of the family goes too): a client must not name the host,
			// scheme or prefix the functions answer for.
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "X-Forwarded-") {
					pr.Out.Header.Del(k)
				}
			}
			pr.Out.Header.Del("Forwarded")
			pr.Out.Header.Del("X-Real-Ip")
			pr.SetXForwarded()
			pr.Out.Header.Del(topology.HeaderOffload) // only this router may ask
			if fn == "media" && store != nil {
				pr.Out.Header.Set(topology.HeaderOffload, offloadPrefix)
			}
			if fn == "events" {
				// faas-provider's proxy (ours and OpenFaaS's gateway) streams
				// a body only for this Accept; anything else is buffered
				// until the stream ends. EventSource sends it, curl does not.
				pr.Out.Header.Set("Accept", "text/event-stream")
			}
			if fn == "upload" {
				// tusd's Location must name this origin's path, not the gateway's.
				pr.Out.Header.Set("X-Forwarded-Prefix", "/api/upload/")
			}
		},
		Transport:  tr,
		BufferPool: copybuf.Pool{}, // media bodies: 256 KiB reads and writes, not 32 KiB
		ModifyResponse: func(res *http.Response) error {
			redirect := res.Header.Get("X-Accel-Redirect")
			if redirect == "" {
				return nil
			}
			res.Header.Del("X-Accel-Redirect")
			rest, ok := strings.CutPrefix(redirect, offloadPrefix)
			if fn, _ := res.Request.Context().Value(fnKey{}).(string); store == nil || !ok || fn != "media" {
				// Only the media function offloads; from anything else
				// it would be a way to make this origin read the store.
				return errors.New("origin: unexpected X-Accel-Redirect")
			}
			return fromStore(res, tr, store, rest)
		},
		// Server-sent events are flushed by ReverseProxy as they come;
		// other bodies stream with the default buffering.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// Never the URL: it carries tokens.
			log.Warn("origin: gateway unreachable", "function", r.Context().Value(fnKey{}), "err", errClass(err))
			http.Error(w, "bad gateway", http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if strings.Contains(p, "//") {
			// No public path has an empty segment; cleaning it here would
			// mean a redirect, and a function behind might clean it otherwise.
			http.NotFound(w, r)
			return
		}
		for _, rt := range routes {
			rest, ok := strings.CutPrefix(p, strings.TrimSuffix(rt.prefix, "/"))
			if !ok || (rest != "" && rest[0] != '/') || (rt.exact && rest != "") {
				continue
			}
			if rt.function == "media" && (rest == "" || rest == "/" || internal(rest) || strings.ContainsAny(rest, "%\\")) {
				// Tokens and keys never need escaping: an escaped media path
				// is a probe, refused here because a gateway in between
				// (faas-provider's proxy) decodes it before media sees it.
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			if internal(rest) {
				http.NotFound(w, r)
				return
			}
			ctx := context.WithValue(context.WithValue(r.Context(), fnKey{}, rt.function), restKey{}, rest)
			rp.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		if o.Static != nil {
			o.Static.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}), nil
}

// fromStore turns res, the media function's offload answer, into the
// store's answer for the presigned path and query in rest, with the
// client's Range and conditions. The function's headers (cache policy,
// nosniff) stay; the store's describe the bytes. A store error becomes a
// plain 404 or 502: its XML body names buckets and keys.
func fromStore(res *http.Response, tr http.RoundTripper, store *url.URL, rest string) error {
	path, query, _ := strings.Cut(rest, "?")
	u := *store
	u.RawPath = "/" + path
	u.Path = mustUnescape(u.RawPath)
	u.RawQuery = query
	req, err := http.NewRequestWithContext(res.Request.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	for _, h := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since"} {
		if v := res.Request.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	sr, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	res.Header.Del("Content-Length")
	switch sr.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusNotModified, http.StatusRequestedRangeNotSatisfiable:
		for _, h := range []string{"Content-Length", "Content-Range", "ETag", "Last-Modified", "Accept-Ranges"} {
			if v := sr.Header.Get(h); v != "" {
				res.Header.Set(h, v)
			}
		}
		res.StatusCode, res.Body, res.ContentLength = sr.StatusCode, sr.Body, sr.ContentLength
		if sr.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			// The store's body is an XML error; the client needs only
			// Content-Range (RFC 9110 §15.5.17), which S3 stores leave out.
			sr.Body.Close()
			res.Body, res.ContentLength = http.NoBody, 0
			res.Header.Set("Content-Length", "0")
			if res.Header.Get("Content-Range") == "" {
				if n, ok := storeSize(req, tr); ok {
					res.Header.Set("Content-Range", "bytes */"+strconv.FormatInt(n, 10))
				}
			}
		}
	default:
		sr.Body.Close()
		code, msg := http.StatusBadGateway, "bad gateway\n"
		if sr.StatusCode == http.StatusNotFound {
			code, msg = http.StatusNotFound, "not found\n"
		}
		res.StatusCode, res.Body, res.ContentLength = code, io.NopCloser(strings.NewReader(msg)), int64(len(msg))
		res.Header.Set("Content-Type", "text/plain; charset=utf-8")
		res.Header.Set("Content-Length", strconv.Itoa(len(msg)))
	}
	res.Status = fmt.Sprintf("%d %s", res.StatusCode, http.StatusText(res.StatusCode))
	return nil
}

// storeSize asks the store for the first byte of get's object, with the
// same presigned URL (the Range header is not signed), and returns the
// size its Content-Range names. Only an unsatisfiable range pays for it.
func storeSize(get *http.Request, tr http.RoundTripper) (int64, bool) {
	req := get.Clone(get.Context())
	req.Header = http.Header{"Range": {"bytes=0-0"}}
	res, err := tr.RoundTrip(req)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	_, total, ok := strings.Cut(res.Header.Get("Content-Range"), "/")
	n, err := strconv.ParseInt(total, 10, 64)
	if res.StatusCode != http.StatusPartialContent || !ok || err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

type fnKey struct{}
type restKey struct{}

func mustUnescape(p string) string {
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}

// errClass names a proxy error without quoting its URL.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, new(*net.OpError)):
		return "connection-failed"
	}
	return "proxy-error"
}

// Server returns an http.Server for h that speaks HTTP/1.1 and HTTP/2 (the
// latter over TLS, negotiated by ALPN). Timeouts leave long media and
// event streams alone but bound slow headers and idle connections.
func Server(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
