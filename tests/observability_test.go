package tests

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/logs"
	"github.com/openfaas/faas-provider/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

// sinkSpan is one span as an OTLP collector received it.
type sinkSpan struct {
	Trace, ID, Parent, Name, Service string
}

// otlpSink is an in-process OTLP/HTTP trace receiver: it accepts what
// otlptracehttp sends to /v1/traces (protobuf, maybe gzipped) and keeps the
// spans, as a collector would get them.
type otlpSink struct {
	URL string
	mu  sync.Mutex
	all []sinkSpan
	bad int // requests it could not decode
}

func startOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				s.failed(w)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err != nil || proto.Unmarshal(b, &req) != nil {
			s.failed(w)
			return
		}
		s.mu.Lock()
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					s.all = append(s.all, sinkSpan{Trace: hex.EncodeToString(sp.TraceId), ID: hex.EncodeToString(sp.SpanId),
						Parent: hex.EncodeToString(sp.ParentSpanId), Name: sp.Name, Service: service})
				}
			}
		}
		s.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *otlpSink) failed(w http.ResponseWriter) {
	s.mu.Lock()
	s.bad++
	s.mu.Unlock()
	http.Error(w, "bad request", http.StatusBadRequest)
}

func (s *otlpSink) spans() []sinkSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// spanChain finds a span matching leaf whose ancestors include one matching
// root, and returns the path from root to leaf.
func spanChain(spans []sinkSpan, root, leaf func(sinkSpan) bool) []sinkSpan {
	byID := map[string]sinkSpan{}
	for _, sp := range spans {
		byID[sp.Trace+sp.ID] = sp
	}
	for _, sp := range spans {
		if !leaf(sp) {
			continue
		}
		path := []sinkSpan{sp}
		for cur, ok := sp, true; ok && cur.Parent != "" && cur.Parent != "0000000000000000"; {
			if cur, ok = byID[cur.Trace+cur.Parent]; ok {
				path = append([]sinkSpan{cur}, path...)
				if root(cur) {
					return path
				}
			}
		}
	}
	return nil
}

func span(service, name string) func(sinkSpan) bool {
	return func(s sinkSpan) bool { return s.Service == service && s.Name == name }
}

// scrapeMetrics reads a Prometheus text exposition.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, res.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return fams
}

// total sums a counter's, gauge's or histogram's (count) series.
func total(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// dashboardMetrics is every metric name the Grafana dashboard queries.
func dashboardMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(infraDir(t), "grafana", "pulsevault-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Datasource struct{ Type string }   `json:"datasource"`
			Targets    []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range d.Panels {
		if p.Datasource.Type == "loki" {
			continue // LogQL, no metrics
		}
		for _, tg := range p.Targets {
			for _, n := range metricNameRe.FindAllString(promqlLabelsRe.ReplaceAllString(tg.Expr, ""), -1) {
				out[n] = true
			}
		}
	}
	return out
}

// Label values that would leak an id or PHI into metrics.
var leakyLabel = map[string]*regexp.Regexp{
	"uuid":       regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`),
	"email":      regexp.MustCompile(`[^@\s]+@[^@\s]+\.[A-Za-z]{2,}`),
	"video file": regexp.MustCompile(`(?i)\.(mp4|mov|m4v|mkv|webm|avi|3gp|m3u8|m4s|mpd)\b`),
	"jwt":        regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}`),
}

// functionLogs returns the JSON log lines of a function, from the gateway's logs API.
func (s *ingestStack) functionLogs(name string) []map[string]any {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.gateway+"/system/logs?follow=false&name="+name, nil)
	req.SetBasicAuth(s.user, s.pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var out []map[string]any
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m logs.Message
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		var line map[string]any
		if json.Unmarshal([]byte(m.Text), &line) == nil {
			out = append(out, line)
		}
	}
	return out
}

// poll calls cond every 200 ms until it holds or within passes, and
// reports how long it took.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

// The acceptance, live: after a real upload → finalize → transcode → sign-url → media →
// audit-append run through the real binary, a scrape of the gateway, the connector and every
// function has every metric the Grafana dashboard queries, the pipeline metrics are non-zero,
// and no label value looks like an id or PHI. The same run, with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an in-process OTLP receiver, yields one trace from upload-finalize through NATS to
// transcode, and one request id that the logs of finalize, transcode and audit-append share.
func TestObservabilityLive(t *testing.T) {
	sink := startOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
	s := startIngestStack(t)
	s.deployPipeline()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i*3 + 1)
	}
	s.system(http.MethodPost, "/system/secrets", types.Secret{Name: record.SecretName, Value: base64.StdEncoding.EncodeToString(seed)}, http.StatusCreated)
	for _, dep := range []types.FunctionDeployment{
		{Service: "sign-url", Image: "pulsevault-sign-url:dev", Secrets: []string{"pulsevault-jwt-secret", token.SecretName}},
		{Service: "media", Image: "pulsevault-media:dev", Secrets: []string{token.SecretName}},
		{Service: "audit-append", Image: "pulsevault-audit-append:dev", Secrets: []string{record.SecretName}},
	} {
		s.system(http.MethodPost, "/system/functions", dep, http.StatusAccepted)
	}

	// A clip whose name is PHI-like: it must not surface in any label.
	clip := filepath.Join(t.TempDir(), "jane.doe@example.com wound.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Width: 360, Height: 640, Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, errOut, err := s.upload(s.gateway+"/function/upload/", s.token, filepath.Join(t.TempDir(), "state.json"),
		"--wait", "--wait-timeout", "4m")(clip)
	m := ingestVideoRe.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("pulsevault upload --wait: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	video := m[1]
	t.Logf("upload → playable: %s", time.Since(start).Round(time.Millisecond))

	code, g, body := signURL(t, http.DefaultClient, s.gateway+"/function/sign-url", s.token, `{"video":"`+video+`"}`)
	if code != http.StatusOK {
		t.Fatalf("sign-url: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := ffmpegPlay(ctx, s.gateway+"/function/media"+strings.TrimPrefix(g.URL, "/media")); err != nil {
		t.Fatalf("playing the signed URL: %v\n%s", err, out)
	}

	// A refusal and a rejection, so their reason-labelled series exist too.
	if code, _, _ := get(t, http.DefaultClient, s.gateway+"/function/media/forged-token/videos/"+video+"/hls/master.m3u8"); code != http.StatusForbidden {
		t.Fatalf("media with a forged token: %d, want 403", code)
	}
	junk := filepath.Join(t.TempDir(), "jane.doe@example.com notes.mp4")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a video\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	rejected := s.mustUpload(junk)

	fnNames := []string{"upload", "upload-finalize", "transcode", "videos", "sign-url", "media", "audit-append"}
	fnScrape := func(name string) map[string]*dto.MetricFamily {
		return scrapeMetrics(t, s.gateway+"/function/"+name+"/metrics")
	}
	waited := poll(t, 2*time.Minute, "audit-append appends the run's events", func() bool {
		return total(fnScrape("audit-append")["pulsevault_audit_appended_total"]) > 0
	})
	t.Logf("playback → audit appended: %s", waited.Round(time.Millisecond))
	poll(t, 2*time.Minute, "upload-finalize rejects the junk upload", func() bool {
		return total(fnScrape("upload-finalize")["pulsevault_uploads_rejected_total"]) > 0
	})

	connMetrics := regexp.MustCompile(`"metrics":"(http://[^"]+)"`).FindStringSubmatch(s.connErr.String())
	if connMetrics == nil {
		t.Fatalf("connector metrics address not in its log:\n%s", s.connErr.String())
	}
	scrapes := map[string]map[string]*dto.MetricFamily{
		"provider":  scrapeMetrics(t, s.gateway+"/metrics"),
		"connector": scrapeMetrics(t, connMetrics[1]),
	}
	for _, fn := range fnNames {
		scrapes["fn/"+fn] = fnScrape(fn)
		// Each function's own families only (issue 16): sums by job count once.
		if bad := foreignFamilies(fn, slices.Collect(maps.Keys(scrapes["fn/"+fn]))); len(bad) > 0 {
			t.Errorf("fn/%s exports families that are not its own: %v", fn, bad)
		}
	}
	live := map[string]*dto.MetricFamily{}
	series := 0
	for src, fams := range scrapes {
		for name, f := range fams {
			series += len(f.Metric)
			if prev := live[name]; prev != nil {
				f = &dto.MetricFamily{Name: f.Name, Type: f.Type, Metric: append(slices.Clone(prev.Metric), f.Metric...)}
			}
			live[name] = f
			for _, m := range f.Metric {
				for _, lp := range m.Label {
					v := lp.GetValue()
					if strings.Contains(v, video) || strings.Contains(v, rejected) {
						t.Errorf("%s: %s{%s=%q} carries a video id", src, name, lp.GetName(), v)
					}
					for what, re := range leakyLabel {
						if re.MatchString(v) {
							t.Errorf("%s: %s{%s=%q} looks like a %s", src, name, lp.GetName(), v, what)
						}
					}
				}
			}
		}
	}
	t.Logf("live scrape: %d metric families, %d series from %d endpoints", len(live), series, len(scrapes))

	var missing []string
	for n := range dashboardMetrics(t) {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok && live[b] != nil {
				base = b
			}
		}
		if live[base] == nil {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics no live endpoint exposes: %v", missing)
	}
	for _, name := range []string{
		"pulsevault_uploads_completed_total", "pulsevault_upload_bytes_total", "pulsevault_finalize_seconds",
		"pulsevault_transcode_seconds", "pulsevault_time_to_playable_seconds", "pulsevault_signed_urls_total",
		"media_bytes_served_total", "pulsevault_audit_appended_total", "pulsevault_audit_chain_length",
		"pulsevault_audit_append_seconds", "pulsevault_transcode_cpu_seconds_total", "pulsevault_uploads_rejected_total",
		"media_forbidden_total", "connector_messages_delivered_total", "gateway_function_invocation_total",
	} {
		if v := total(live[name]); v <= 0 {
			t.Errorf("%s is %v after the run, want > 0", name, v)
		} else {
			t.Logf("%-40s %v", name, v)
		}
	}

	// One trace: the connector's delivery of the bucket event → gateway → upload-finalize →
	// bus publish of a job → (NATS) → connector → gateway → transcode.
	var path []sinkSpan
	waited = poll(t, time.Minute, "a trace from upload-finalize to transcode", func() bool {
		path = spanChain(sink.spans(), span("upload-finalize", "function upload-finalize"), span("transcode", "function transcode"))
		return path != nil
	})
	var hops []string
	for _, sp := range path {
		hops = append(hops, sp.Service+": "+sp.Name)
		if sp.Trace != path[0].Trace {
			t.Errorf("span %s left trace %s", sp.Name, path[0].Trace)
		}
	}
	t.Logf("trace %s (found %s after the run; %d spans received):\n  %s", path[0].Trace, waited.Round(time.Millisecond),
		len(sink.spans()), strings.Join(hops, "\n  "))
	for _, want := range []string{"upload-finalize: bus publish", "pulsevault-connector: connector deliver transcode", "pulsevault-provider: gateway proxy transcode"} {
		if !slices.Contains(hops, want) {
			t.Errorf("trace path lacks %q", want)
		}
	}
	if sink.bad > 0 {
		t.Errorf("%d OTLP requests could not be decoded", sink.bad)
	}

	// One request id in the logs of finalize, transcode and audit-append.
	var rid, traceID string
	for _, l := range s.functionLogs("upload-finalize") {
		if l["msg"] == "upload finalized" && l["video"] == video {
			rid, _ = l["request_id"].(string)
			traceID, _ = l["trace_id"].(string)
		}
	}
	if rid == "" {
		t.Fatal("upload-finalize logged no request_id with the finalized upload")
	}
	if traceID != path[0].Trace {
		t.Errorf("finalize logged trace_id %q, the trace is %s", traceID, path[0].Trace)
	}
	transcodeLines := 0
	for _, l := range s.functionLogs("transcode") {
		if l["request_id"] == rid && l["video"] == video {
			transcodeLines++
		}
	}
	if transcodeLines == 0 {
		t.Errorf("no transcode log line carries request_id %s", rid)
	}
	poll(t, time.Minute, "audit-append logs a batch with request id "+rid, func() bool {
		for _, l := range s.functionLogs("audit-append") {
			if ids, ok := l["request_ids"].([]any); ok && slices.Contains(ids, any(rid)) {
				return true
			}
		}
		return false
	})
	t.Logf("request %s: finalize → %d transcode log lines → audit-append batch", rid, transcodeLines)
}
