// Package publicapi is the public origin: the one listener browsers and
// players talk to. It forwards
//
//	/media/<token>/...  → GATEWAY_URL/function/media/<token>/...
//	/api/sign-url       → GATEWAY_URL/function/sign-url
//	/api/videos[/...]   → GATEWAY_URL/function/videos[/...]
//	/api/events         → GATEWAY_URL/function/events
//
// and everything else to an optional static handler (Vitals). Paths are
// forwarded as they arrived, still escaped, so the media function sees (and
// refuses) encoded traversal itself. Responses are streamed, server-sent
// events flushed at once. It serves HTTP/1.1 and, over TLS, HTTP/2.
package publicapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// Options configures Handler and Serve.
type Options struct {
	GatewayURL string       // http(s)://host:port of the OpenFaaS gateway (or pulsevault provider)
	Static     http.Handler // serves every other path; nil answers 404
	Logger     *slog.Logger
	// Transport reaches the gateway; default a clone of http.DefaultTransport.
	Transport http.RoundTripper
}

// routes maps a public path prefix to a function; exact means the path
// must equal the prefix or continue with "/".
var routes = []struct{ prefix, function string }{
	{"/media/", "media"},
	{"/api/sign-url", "sign-url"},
	{"/api/videos", "videos"},
	{"/api/events", "events"},
	{"/api/upload/", "upload"},
}

// Handler returns the public router.
func Handler(o Options) (http.Handler, error) {
	gw, err := url.Parse(o.GatewayURL)
	if err != nil || (gw.Scheme != "http" && gw.Scheme != "https") || gw.Host == "" || gw.RawQuery != "" || gw.User != nil {
		return nil, fmt.Errorf("publicapi: gateway URL %q must be http(s)://host:port without credentials or query", o.GatewayURL)
	}
	gw.Path = strings.TrimRight(gw.Path, "/")
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := o.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
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
			pr.SetXForwarded()
			if fn == "upload" {
				// tusd's Location must name this origin's path, not the gateway's.
				pr.Out.Header.Set("X-Forwarded-Prefix", "/api/upload/")
			}
		},
		Transport: tr,
		// Server-sent events are flushed by ReverseProxy as they come;
		// other bodies stream with the default buffering.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// Never the URL: it carries tokens.
			log.Warn("publicapi: gateway unreachable", "function", r.Context().Value(fnKey{}), "err", errClass(err))
			http.Error(w, "bad gateway", http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		for _, rt := range routes {
			rest, ok := strings.CutPrefix(p, strings.TrimSuffix(rt.prefix, "/"))
			if !ok || (rest != "" && rest[0] != '/') {
				continue
			}
			if rt.function == "media" && (rest == "" || rest == "/" || strings.HasPrefix(rest, "/_/") || strings.ContainsAny(rest, "%\\")) {
				// /_/ is the function's own diagnostics, not for the public.
				// Tokens and keys never need escaping: an escaped media path
				// is a probe, refused here because a gateway in between
				// (faas-provider's proxy) decodes it before media sees it.
				http.Error(w, "forbidden", http.StatusForbidden)
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
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
