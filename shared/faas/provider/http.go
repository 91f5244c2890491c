package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/auth"
	fhttputil "github.com/openfaas/faas-provider/httputil"
	"github.com/openfaas/faas-provider/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// maxSystemBody caps the JSON bodies of /system/* requests.
const maxSystemBody = 1 << 20

// GatewayInfo is what /system/info answers faas-cli: the gateway's shape
// (faas-cli version reads it), wrapping faas-provider's ProviderInfo, which
// is what it answers the OpenFaaS gateway when that runs in front.
type GatewayInfo struct {
	Provider *types.ProviderInfo `json:"provider"`
	Version  *types.VersionInfo  `json:"version"`
	Arch     string              `json:"arch"`
}

func (p *Provider) routes() http.Handler {
	system := auth.DecorateWithBasicAuth(p.system, p.creds)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case strings.HasPrefix(path, "/function/"):
			p.invoke(w, r, strings.TrimPrefix(path, "/function/"))
		case strings.HasPrefix(path, "/async-function/"):
			p.invokeAsync(w, r, strings.TrimPrefix(path, "/async-function/"))
		case strings.HasPrefix(path, "/system/"):
			system(w, r)
		case path == "/healthz":
			if !allow(w, r, http.MethodGet, http.MethodHead) {
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "OK")
		case path == "/metrics":
			p.metrics.handler.ServeHTTP(w, r)
		default:
			httpError(w, http.StatusNotFound, "not found: this gateway serves /function/NAME, /async-function/NAME, /system/..., /healthz and /metrics")
		}
	})
}

func (p *Provider) system(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/system/functions":
		switch r.Method {
		case http.MethodGet:
			if p.checkNSQuery(w, r) {
				writeJSON(w, http.StatusOK, p.list())
			}
		case http.MethodPost, http.MethodPut:
			p.deployHTTP(w, r)
		case http.MethodDelete:
			p.deleteHTTP(w, r)
		default:
			allow(w, r, http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
		}
	case strings.HasPrefix(path, "/system/function/"):
		if !allow(w, r, http.MethodGet) || !p.checkNSQuery(w, r) {
			return
		}
		f, ok := p.lookupHTTP(w, strings.TrimPrefix(path, "/system/function/"))
		if ok {
			writeJSON(w, http.StatusOK, f.status())
		}
	case strings.HasPrefix(path, "/system/scale-function/"):
		if allow(w, r, http.MethodPost) {
			p.scaleHTTP(w, r, strings.TrimPrefix(path, "/system/scale-function/"))
		}
	case path == "/system/info":
		if !allow(w, r, http.MethodGet) {
			return
		}
		info := p.info()
		if behindGateway(r) {
			// The OpenFaaS gateway asks its provider, and wraps the answer.
			writeJSON(w, http.StatusOK, info.Provider)
			return
		}
		writeJSON(w, http.StatusOK, info)
	case path == "/system/logs":
		if !allow(w, r, http.MethodGet) || !p.checkNSQuery(w, r) {
			return
		}
		if _, ok := p.lookupHTTP(w, r.URL.Query().Get("name")); ok {
			p.logsQuery(w, r)
		}
	case path == "/system/secrets":
		p.secretsHTTP(w, r)
	case path == "/system/namespaces":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, []string{Namespace})
		}
	default:
		httpError(w, http.StatusNotFound, "not found: unknown system endpoint "+path)
	}
}

// invoke proxies /function/NAME[.NAMESPACE][/PATH] to a replica through
// faas-provider's proxy, counting it in the gateway metrics.
func (p *Provider) invoke(w http.ResponseWriter, r *http.Request, rest string) {
	nameNS, params, _ := strings.Cut(rest, "/")
	name, _, err := splitFunction(nameNS)
	if err != nil {
		writeErr(w, err)
		return
	}
	f := p.lookup(name)
	if f == nil {
		httpError(w, http.StatusNotFound, notDeployed(name))
		return
	}
	p.metrics.start(name)
	start := time.Now()
	// The request id and trace context travel to the replica in the headers
	// faas-provider's proxy copies.
	w.Header().Set(tracing.HeaderRequestID, tracing.EnsureRequestID(r.Header))
	ctx, span := tracing.Start(tracing.Extract(r.Context(), r.Header), "gateway proxy "+name, trace.SpanKindServer,
		trace.WithAttributes(attribute.String("faas.name", name)))
	defer span.End()
	tracing.Inject(ctx, r.Header)
	defer idleBody(w, r, bodyIdleTimeout)()
	iw := fhttputil.NewHttpWriteInterceptor(w)
	p.proxy(iw, mux.SetURLVars(r.WithContext(ctx), map[string]string{"name": name, "params": params}))
	p.metrics.done(name, iw.Status(), time.Since(start))
	span.SetAttributes(attribute.Int("http.response.status_code", iw.Status()))
	f.invocations.Add(1)
}

func notDeployed(name string) string {
	return fmt.Sprintf("function %q is not deployed: deploy it first (faas-cli deploy), or list functions with GET /system/functions", name)
}

func (p *Provider) lookupHTTP(w http.ResponseWriter, nameNS string) (*function, bool) {
	name, _, err := splitFunction(nameNS)
	if err != nil {
		writeErr(w, err)
		return nil, false
	}
	f := p.lookup(name)
	if f == nil {
		httpError(w, http.StatusNotFound, notDeployed(name))
		return nil, false
	}
	return f, true
}

func (p *Provider) checkNSQuery(w http.ResponseWriter, r *http.Request) bool {
	if err := checkNamespace(r.URL.Query().Get("namespace")); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

func (p *Provider) deployHTTP(w http.ResponseWriter, r *http.Request) {
	var dep types.FunctionDeployment
	if !decodeJSON(w, r, &dep) {
		return
	}
	mode := modeCreate
	if r.Method == http.MethodPut {
		mode = modeUpdate
	}
	if _, err := p.deploy(r.Context(), dep, mode); err != nil {
		p.writeOpErr(w, "deploy", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *Provider) deleteHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.checkNSQuery(w, r) {
		return
	}
	var req types.DeleteFunctionRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if err := checkFunctionName(req.FunctionName); err != nil {
		writeErr(w, err)
		return
	}
	if err := checkNamespace(req.Namespace); err != nil {
		writeErr(w, err)
		return
	}
	if err := p.delete(req.FunctionName); err != nil {
		p.writeOpErr(w, "delete", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *Provider) scaleHTTP(w http.ResponseWriter, r *http.Request, nameNS string) {
	name, _, err := splitFunction(nameNS)
	if err != nil {
		writeErr(w, err)
		return
	}
	var req types.ScaleServiceRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.ServiceName != "" && req.ServiceName != name {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("serviceName %q does not match the function in the path, %q", req.ServiceName, name))
		return
	}
	if err := checkNamespace(req.Namespace); err != nil {
		writeErr(w, err)
		return
	}
	if req.Replicas > uint64(p.opts.MaxReplicas) {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("replicas must be 0–%d, got %d", p.opts.MaxReplicas, req.Replicas))
		return
	}
	if err := p.scale(r.Context(), name, int(req.Replicas), false); err != nil {
		p.writeOpErr(w, "scale", err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (p *Provider) secretsHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		if !p.checkNSQuery(w, r) {
			return
		}
		names, err := p.secrets.list()
		if err != nil {
			p.writeOpErr(w, "list secrets", err)
			return
		}
		out := make([]types.Secret, 0, len(names))
		for _, n := range names {
			out = append(out, types.Secret{Name: n, Namespace: Namespace})
		}
		writeJSON(w, http.StatusOK, out)
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		var s types.Secret
		if !decodeJSON(w, r, &s) {
			return
		}
		var err error
		code := http.StatusOK
		switch r.Method {
		case http.MethodPost:
			err, code = p.secrets.put(s, true), http.StatusCreated
		case http.MethodPut:
			if err = p.secrets.put(s, false); err == nil {
				p.refreshSecret(s.Name)
			}
		default:
			if err = checkNamespace(s.Namespace); err == nil {
				err = p.secrets.remove(s.Name)
			}
		}
		if err != nil {
			p.writeOpErr(w, "secret", err)
			return
		}
		w.WriteHeader(code)
	default:
		allow(w, r, http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
	}
}

// behindGateway tells the real OpenFaaS gateway, which sets X-Forwarded-For
// and X-Forwarded-Host on everything it forwards to its provider, from
// faas-cli calling this provider as its gateway (it sets neither).
func behindGateway(r *http.Request) bool {
	return r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("X-Forwarded-Host") != ""
}

func (p *Provider) info() GatewayInfo {
	sha := p.opts.SHA
	if sha == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					sha = s.Value
				}
			}
		}
	}
	v := &types.VersionInfo{Release: p.opts.Version, SHA: sha}
	return GatewayInfo{
		Provider: &types.ProviderInfo{Name: "pulsevault", Orchestration: "pulsevault-process", Version: v},
		Version:  v,
		Arch:     arch(),
	}
}

// arch names the machine as `uname -m` does, like the gateway.
func arch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// writeOpErr maps the package's errors to status codes; anything else is
// logged and answered with 500.
func (p *Provider) writeOpErr(w http.ResponseWriter, op string, err error) {
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound), errors.Is(err, ErrExists):
		writeErr(w, err)
	default:
		p.log.Error("provider: "+op+" failed", "err", err)
		httpError(w, http.StatusInternalServerError, op+" failed: "+err.Error())
	}
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrExists):
		code = http.StatusConflict
	}
	msg := err.Error()
	for _, e := range []error{ErrInvalid, ErrNotFound, ErrExists} {
		msg = strings.TrimPrefix(msg, e.Error()+": ")
	}
	httpError(w, code, msg)
}

// httpError answers with a one-line plain-text message, as the gateway does
// (faas-cli prints the body).
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("X-OpenFaaS-Internal", "gateway")
	http.Error(w, msg, code)
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	httpError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed here (allowed: %s)", r.Method, strings.Join(methods, ", ")))
	return false
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSystemBody))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxSystemBody))
	case errors.Is(err, io.EOF):
		httpError(w, http.StatusBadRequest, "malformed request: the JSON body is empty")
	default:
		httpError(w, http.StatusBadRequest, "malformed request: invalid JSON body: "+err.Error())
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encoding the response failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
