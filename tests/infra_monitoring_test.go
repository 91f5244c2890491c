package tests

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// metricNameRe finds metric names in PromQL; label matchers and grouping are removed first.
var (
	metricNameRe   = regexp.MustCompile(`\b((?:gateway|connector|function|process|go|pulsevault|media)_[a-z0-9_]+)\b`)
	promqlLabelsRe = regexp.MustCompile(`\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)`)
	goMetricNameRe = regexp.MustCompile(`Name:\s*"([a-z_:][a-z0-9_:]*)"`)
)

// definedMetrics is every metric name declared in the module's Go sources (plus the standard
// process collector's), the set a dashboard may query.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"process_resident_memory_bytes": true, "process_cpu_seconds_total": true, "go_goroutines": true}
	root := repoRoot(t)
	for _, dir := range []string{"shared", "functions", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range goMetricNameRe.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// The dashboard is valid Grafana JSON, follows the pipeline (ingest → transcode → playback →
// audit) and queries only metrics the code defines.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(infraDir(t), "grafana", "pulsevault-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct{ H, W, X, Y int }
			// Loki panels (LogQL) are checked by TestAlloyDashboardLogs.
			Datasource struct{ Type string } `json:"datasource"`
			Targets    []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs uid and title")
	}
	defined := definedMetrics(t)
	ids := map[int]bool{}
	var rows []string
	queried := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			rows = append(rows, strings.ToLower(p.Title))
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource.Type == "loki" {
			continue
		}
		for _, tg := range p.Targets {
			names := metricNameRe.FindAllString(promqlLabelsRe.ReplaceAllString(tg.Expr, ""), -1)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, n := range names {
				base := n
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && defined[b] {
						base = b
					}
				}
				if !defined[base] {
					t.Errorf("panel %q queries %s, which no Go source defines", p.Title, n)
				}
				queried[base] = true
			}
		}
	}
	order := []string{"ingest", "transcode", "playback", "audit"}
	i := 0
	for _, r := range rows {
		if i < len(order) && strings.HasPrefix(r, order[i]) {
			i++
		}
	}
	if i != len(order) {
		t.Errorf("rows %q: want %v in that order", rows, order)
	}
	for _, m := range []string{"gateway_function_invocation_total", "gateway_functions_seconds", "connector_lag_messages", "function_requests_total"} {
		if !queried[m] {
			t.Errorf("dashboard does not use %s", m)
		}
	}
}

func TestPrometheusScrapeConfigs(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"prometheus.yml", "prometheus-single-node.yml"} {
		docs := yamlFile(t, filepath.Join(infraDir(t), "prometheus", name))
		jobs, _ := dig(docs[0], "scrape_configs").([]any)
		seen := map[string]bool{}
		for _, j := range jobs {
			jn, _ := dig(j, "job_name").(string)
			if jn == "" || seen[jn] {
				t.Errorf("%s: job name %q empty or repeated", name, jn)
			}
			seen[jn] = true
			if dig(j, "static_configs") == nil && dig(j, "kubernetes_sd_configs") == nil {
				t.Errorf("%s job %s: no targets", name, jn)
			}
		}
		if !seen["pulsevault-connector"] || (!seen["openfaas-gateway"] && !seen["pulsevault-provider"]) {
			t.Errorf("%s: needs the gateway and the connector jobs, has %v", name, seen)
		}
	}
}
