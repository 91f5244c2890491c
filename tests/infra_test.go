package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"go.yaml.in/yaml/v3"

	"github.com/mieweb/pulsevault/shared/ingest/tusclient"
	"github.com/mieweb/pulsevault/shared/playback/origin"
)

// infraDir is the production manifests' folder (infra/tools is the tools module, not manifests).
func infraDir(t *testing.T) string { return filepath.Join(repoRoot(t), "infra") }

// infraFiles lists infra/ files with one of exts, infra/tools excluded.
func infraFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	root := infraDir(t)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == filepath.Join(root, "tools") {
			return filepath.SkipDir
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(p)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// yamlDocs decodes every document of a YAML stream.
func yamlDocs(r io.Reader) ([]map[string]any, error) {
	dec := yaml.NewDecoder(r)
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

func yamlFile(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs, err := yamlDocs(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return docs
}

// dig walks nested maps (and list indexes given as ints).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestInfraFilesParse(t *testing.T) {
	t.Parallel()
	n := 0
	for _, p := range infraFiles(t, ".yaml", ".yml") {
		if docs := yamlFile(t, p); len(docs) == 0 {
			t.Errorf("%s: no YAML document", p)
		}
		n++
	}
	for _, p := range infraFiles(t, ".json") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d YAML/JSON files under infra/", n)
	}
}

// stackFile is what the infra checks need from stack.yml.
type stackFile struct {
	Functions map[string]struct {
		Image       string            `yaml:"image"`
		Secrets     []string          `yaml:"secrets"`
		Annotations map[string]string `yaml:"annotations"`
		Limits      map[string]string `yaml:"limits"`
		BuildArgs   map[string]string `yaml:"build_args"`
	} `yaml:"functions"`
}

func readStack(t *testing.T) stackFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s stackFile
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Functions) == 0 {
		t.Fatal("stack.yml declares no function")
	}
	return s
}

// Workloads in infra/k8s must carry what a restricted cluster demands: resources, a non-root
// read-only security context, and probes on long-running ones.
func TestInfraManifestsLint(t *testing.T) {
	t.Parallel()
	kinds := map[string]int{}
	for _, p := range infraFiles(t, ".yaml") {
		if filepath.Base(filepath.Dir(p)) != "k8s" {
			continue
		}
		for i, d := range yamlFile(t, p) {
			kind, _ := d["kind"].(string)
			name, _ := dig(d, "metadata", "name").(string)
			where := fmt.Sprintf("%s doc %d (%s %s)", filepath.Base(p), i, kind, name)
			if d["apiVersion"] == nil || kind == "" || name == "" {
				t.Errorf("%s: needs apiVersion, kind and metadata.name", where)
				continue
			}
			if ns, _ := dig(d, "metadata", "namespace").(string); ns == "" && kind != "Namespace" {
				t.Errorf("%s: no metadata.namespace", where)
			}
			kinds[kind]++
			var pod any
			switch kind {
			case "Deployment", "StatefulSet", "DaemonSet", "Job":
				pod = dig(d, "spec", "template", "spec")
			case "NetworkPolicy":
				if dig(d, "spec", "podSelector") == nil || dig(d, "spec", "policyTypes") == nil {
					t.Errorf("%s: needs spec.podSelector and spec.policyTypes", where)
				}
				continue
			default:
				continue
			}
			if dig(pod, "securityContext", "runAsNonRoot") != true {
				t.Errorf("%s: pod securityContext.runAsNonRoot must be true", where)
			}
			if u, _ := dig(pod, "securityContext", "runAsUser").(int); u == 0 {
				t.Errorf("%s: pod securityContext.runAsUser must be a non-zero uid", where)
			}
			if dig(pod, "automountServiceAccountToken") != false {
				t.Errorf("%s: automountServiceAccountToken must be false (no Kubernetes API use)", where)
			}
			containers, _ := dig(pod, "containers").([]any)
			if len(containers) == 0 {
				t.Errorf("%s: no containers", where)
			}
			for _, c := range containers {
				cn, _ := dig(c, "name").(string)
				cw := where + " container " + cn
				img, _ := dig(c, "image").(string)
				if img == "" || strings.HasSuffix(img, ":latest") || !strings.Contains(img, ":") {
					t.Errorf("%s: image %q must name a tag other than latest", cw, img)
				}
				for _, r := range [][]any{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
					if dig(c, append([]any{"resources"}, r...)...) == nil {
						t.Errorf("%s: no resources.%s.%s", cw, r[0], r[1])
					}
				}
				sc := dig(c, "securityContext")
				if dig(sc, "runAsNonRoot") != true || dig(sc, "allowPrivilegeEscalation") != false ||
					dig(sc, "readOnlyRootFilesystem") != true || !slices.Contains(toStrings(dig(sc, "capabilities", "drop")), "ALL") {
					t.Errorf("%s: securityContext must set runAsNonRoot, allowPrivilegeEscalation: false, readOnlyRootFilesystem and drop ALL capabilities: %v", cw, sc)
				}
				if kind != "Job" && (dig(c, "readinessProbe") == nil || dig(c, "livenessProbe") == nil) {
					t.Errorf("%s: a long-running container needs readinessProbe and livenessProbe", cw)
				}
			}
		}
	}
	for _, k := range []string{"Deployment", "Job", "Secret", "NetworkPolicy"} {
		if kinds[k] == 0 {
			t.Errorf("infra/k8s has no %s", k)
		}
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Every secret a function lists in stack.yml has a template, in the functions' namespace, whose
// key is the secret's own name (the file OpenFaaS mounts); no template carries a real value.
func TestInfraSecretTemplatesCoverStack(t *testing.T) {
	t.Parallel()
	have := map[string]bool{}
	for _, d := range yamlFile(t, filepath.Join(infraDir(t), "k8s", "secrets.template.yaml")) {
		if d["kind"] != "Secret" {
			t.Errorf("secrets.template.yaml holds a %v", d["kind"])
			continue
		}
		name, _ := dig(d, "metadata", "name").(string)
		data, _ := dig(d, "stringData").(map[string]any)
		for k, v := range data {
			if s, _ := v.(string); !strings.Contains(s, "REPLACE_ME") && k != "basic-auth-user" {
				t.Errorf("secret %s key %s holds a value, not REPLACE_ME", name, k)
			}
		}
		if dig(d, "metadata", "namespace") == "openfaas-fn" {
			if _, ok := data[name]; !ok {
				t.Errorf("function secret %s: its key must be %q", name, name)
			}
			have[name] = true
		}
	}
	for fn, f := range readStack(t).Functions {
		for _, s := range f.Secrets {
			if !have[s] {
				t.Errorf("stack.yml function %s lists secret %s, which has no template in infra/k8s/secrets.template.yaml", fn, s)
			}
		}
	}
}

// s3Allowed is, per function, the most its S3 user may be granted: resource → actions,
// read off the code (see infra/README.md "S3 credentials per function"). A policy may
// grant less, never more; events has no S3 user at all.
var s3Allowed = map[string]map[string][]string{
	// tusd's s3store on the staging bucket (ListBucket: a HEAD of a missing .part answers 404, not 403).
	"upload": {
		"arn:aws:s3:::pulse-uploads":   {"s3:ListBucket"},
		"arn:aws:s3:::pulse-uploads/*": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"},
	},
	// Reads and clears staged uploads; locks the original; creates and updates meta.json.
	"upload-finalize": {
		"arn:aws:s3:::pulse-uploads":                   {"s3:ListBucket"},
		"arn:aws:s3:::pulse-uploads/*":                 {"s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media":                     {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/original.*": {"s3:GetObject", "s3:GetObjectRetention", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json":  {"s3:GetObject", "s3:PutObject"},
	},
	// Reads the original and meta.json, writes renditions, manifests, posters and meta.json.
	"transcode": {
		"arn:aws:s3:::pulse-media":                     {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/original.*": {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json":  {"s3:GetObject", "s3:PutObject"},
		"arn:aws:s3:::pulse-media/videos/*/hls/*":      {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/dash/*":     {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
		"arn:aws:s3:::pulse-media/videos/*/poster.jpg": {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
		"arn:aws:s3:::pulse-media/videos/*/thumb.jpg":  {"s3:PutObject", "s3:PutObjectRetention"},
		// A Pulse upload's staged companions, read; the web MP4, written.
		"arn:aws:s3:::pulse-media/videos/*/captions/*":    {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/thumbnail.jpg": {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/beats.json":    {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/web.mp4":       {"s3:PutObject", "s3:PutObjectRetention", "s3:AbortMultipartUpload"},
	},
	// Internet-facing, read-only: meta.json for the policy check.
	"sign-url": {
		"arn:aws:s3:::pulse-media":                    {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json": {"s3:GetObject"},
	},
	// Internet-facing, read-only: what a playback token may reach (never the original or meta.json).
	"media": {
		"arn:aws:s3:::pulse-media":                     {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/hls/*":      {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/dash/*":     {"s3:GetObject"},
		"arn:aws:s3:::pulse-media/videos/*/poster.jpg": {"s3:GetObject"},
	},
	// Internet-facing, read-only: the catalog lists videos/ and reads meta.json.
	"videos": {
		"arn:aws:s3:::pulse-media":                    {"s3:ListBucket"},
		"arn:aws:s3:::pulse-media/videos/*/meta.json": {"s3:GetObject"},
	},
	// Create-only writes with retention, and reading one back after a 412.
	"audit-append": {
		"arn:aws:s3:::pulse-audit/*": {"s3:GetObject", "s3:PutObject", "s3:PutObjectRetention"},
	},
}

// iamPolicy is the subset of the IAM policy language the per-function policies use.
type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]any
	}
}

// Regression (issue 15, finding 10): every function holds an S3 credential of its own,
// whose policy in infra/policies grants no more than that function's code needs.
func TestInfraPerFunctionS3Policies(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(infraDir(t), "policies")
	seen := map[string]bool{}
	for fn, f := range readStack(t).Functions {
		var s3 []string
		for _, s := range f.Secrets {
			if strings.HasPrefix(s, "pulsevault-s3-") {
				s3 = append(s3, s)
			}
		}
		allowed, uses := s3Allowed[fn]
		if !uses {
			if len(s3) > 0 {
				t.Errorf("%s lists S3 secrets %v but has no S3 user", fn, s3)
			}
			if _, err := os.Stat(filepath.Join(dir, fn+".json")); err == nil {
				t.Errorf("%s has no S3 user but a policy %s.json", fn, fn)
			}
			continue
		}
		seen[fn+".json"] = true
		if want := []string{"pulsevault-s3-" + fn + "-access-key", "pulsevault-s3-" + fn + "-secret-key"}; !slices.Equal(s3, want) {
			t.Errorf("%s: S3 secrets %v, want its own %v", fn, s3, want)
		}
		b, err := os.ReadFile(filepath.Join(dir, fn+".json"))
		if err != nil {
			t.Errorf("%s: no policy: %v", fn, err)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var p iamPolicy
		if err := dec.Decode(&p); err != nil {
			t.Errorf("%s.json: %v", fn, err)
			continue
		}
		if p.Version != "2012-10-17" || len(p.Statement) == 0 {
			t.Errorf("%s.json: version %q, %d statements", fn, p.Version, len(p.Statement))
		}
		granted := 0
		for _, st := range p.Statement {
			if st.Effect != "Allow" || st.Condition != nil || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Errorf("%s.json %s: want Allow statements with actions and resources, no conditions", fn, st.Sid)
				continue
			}
			for _, r := range st.Resource {
				for _, a := range st.Action {
					if !slices.Contains(allowed[r], a) {
						t.Errorf("%s.json %s grants %s on %s: more than %s needs", fn, st.Sid, a, r, fn)
					}
					granted++
				}
			}
		}
		if granted == 0 {
			t.Errorf("%s.json grants nothing", fn)
		}
	}
	for fn := range s3Allowed {
		if !seen[fn+".json"] {
			t.Errorf("%s is not in stack.yml, or lists no S3 secrets", fn)
		}
	}
	// The rest of infra/policies: the bootstrap user's and the auditors'.
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range files {
		if name := filepath.Base(p); !seen[name] && name != "bootstrap.json" && name != "pulse-audit-readonly.json" {
			t.Errorf("infra/policies/%s belongs to no function", name)
		}
	}
}

// The Helm values carry what the design needs from each chart.
func TestInfraHelmValues(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(infraDir(t), "helm")
	one := func(name string) map[string]any {
		docs := yamlFile(t, filepath.Join(dir, name))
		if len(docs) != 1 {
			t.Fatalf("%s: want one document, got %d", name, len(docs))
		}
		return docs[0]
	}
	nats := one("nats-values.yaml")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"config", "jetstream", "enabled"}, true},
		{[]any{"config", "jetstream", "fileStore", "enabled"}, true},
		{[]any{"config", "cluster", "enabled"}, true},
		{[]any{"config", "cluster", "replicas"}, 3},
		{[]any{"promExporter", "enabled"}, true},
	} {
		if got := dig(nats, c.path...); got != c.want {
			t.Errorf("nats-values.yaml %v = %v, want %v", c.path, got, c.want)
		}
	}
	minio := one("minio-values.yaml")
	if dig(minio, "tls", "enabled") != true {
		t.Error("minio-values.yaml: tls.enabled must be true")
	}
	env, _ := dig(minio, "environment").(map[string]any)
	for _, k := range []string{"MINIO_NOTIFY_NATS_ENABLE_PRIMARY", "MINIO_NOTIFY_NATS_ADDRESS_PRIMARY", "MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"} {
		if env[k] == nil || env[k] == "" {
			t.Errorf("minio-values.yaml: environment.%s is not set", k)
		}
	}
	if env["MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"] != "pulse.s3.events" {
		t.Errorf("minio-values.yaml: events go to %v, not EVENT_SUBJECT's default pulse.s3.events", env["MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"])
	}
	if b, _ := dig(minio, "buckets").([]any); len(b) != 0 {
		t.Error("minio-values.yaml: the chart must not create buckets (bootstrap does, with Object Lock)")
	}
	of := one("openfaas-values.yaml")
	if dig(of, "functionNamespace") != "openfaas-fn" || dig(of, "basic_auth") != true {
		t.Error("openfaas-values.yaml: functionNamespace openfaas-fn and basic_auth true expected")
	}
	// The gateway must wait as long as the slowest function may run.
	var longest time.Duration
	for _, f := range readStackEnv(t) {
		if d, err := time.ParseDuration(f["exec_timeout"]); err == nil && d > longest {
			longest = d
		}
	}
	for _, k := range [][]any{{"gateway", "upstreamTimeout"}, {"gateway", "writeTimeout"}, {"faasnetes", "writeTimeout"}} {
		s, _ := dig(of, k...).(string)
		d, err := time.ParseDuration(s)
		if err != nil || d < longest {
			t.Errorf("openfaas-values.yaml %v = %q: must be at least the longest exec_timeout in stack.yml (%s)", k, s, longest)
		}
	}
}

// readStackEnv returns each stack.yml function's environment.
func readStackEnv(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Functions map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"functions"`
	}
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for n, f := range s.Functions {
		out[n] = f.Environment
	}
	return out
}

// The real faas-cli renders one Function CRD per stack.yml function, with its image, secrets,
// annotations and limits: what `faas-cli generate | kubectl apply -f -` would apply.
func TestFaasCLIGenerateRendersFunctionCRDs(t *testing.T) {
	t.Parallel()
	dir := copyProject(t)
	cmd := exec.Command(faasCLI(t), "generate", "--api", "openfaas.com/v1", "--namespace", "openfaas-fn", "-f", "stack.yml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("faas-cli generate: %v\n%s", err, stderr.String())
	}
	docs, err := yamlDocs(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("generated YAML: %v\n%s", err, out)
	}
	stack := readStack(t)
	got := map[string]map[string]any{}
	for _, d := range docs {
		name, _ := dig(d, "metadata", "name").(string)
		if d["apiVersion"] != "openfaas.com/v1" || d["kind"] != "Function" || dig(d, "metadata", "namespace") != "openfaas-fn" || dig(d, "spec", "name") != name {
			t.Errorf("not a Function CRD in openfaas-fn: %v", d)
		}
		got[name] = d
	}
	var want []string
	for n := range stack.Functions {
		want = append(want, n)
	}
	sort.Strings(want)
	gotNames := make([]string, 0, len(got))
	for n := range got {
		gotNames = append(gotNames, n)
	}
	sort.Strings(gotNames)
	if !slices.Equal(gotNames, want) {
		t.Fatalf("rendered %v, stack.yml has %v", gotNames, want)
	}
	for n, f := range stack.Functions {
		d := got[n]
		if img, _ := dig(d, "spec", "image").(string); img == "" || strings.Contains(img, "${") {
			t.Errorf("%s: image %q not substituted", n, img)
		}
		if s := toStrings(dig(d, "spec", "secrets")); !slices.Equal(s, f.Secrets) {
			t.Errorf("%s: secrets %v, stack.yml %v", n, s, f.Secrets)
		}
		for k, v := range f.Annotations {
			if dig(d, "spec", "annotations", k) != v {
				t.Errorf("%s: annotation %s = %v, stack.yml %q", n, k, dig(d, "spec", "annotations", k), v)
			}
		}
		if m := f.Limits["memory"]; m != "" && dig(d, "spec", "limits", "memory") != m {
			t.Errorf("%s: limits.memory %v, stack.yml %q", n, dig(d, "spec", "limits", "memory"), m)
		}
	}
}

// The function image: non-root, no shell in the entrypoint, distroless unless FFmpeg is needed.
func TestFunctionDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "templates", "pulsevault-go", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		from, name string
		lines      []string
	}
	var stages []stage
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if strings.EqualFold(f[0], "FROM") {
			s := stage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
		}
	}
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	if len(stages) == 0 {
		t.Fatal("no FROM")
	}
	final := stages[len(stages)-1]
	if final.from != "runtime-${FFMPEG}" {
		t.Fatalf("final stage FROM %s: want runtime-${FFMPEG}", final.from)
	}
	if s, ok := byName["runtime-false"]; !ok || !strings.HasPrefix(s.from, "gcr.io/distroless/static") {
		t.Errorf("runtime-false must be distroless static (no shell): %+v", s)
	}
	if s, ok := byName["runtime-true"]; !ok || !strings.Contains(strings.Join(s.lines, "\n"), "ffmpeg") {
		t.Errorf("runtime-true must install ffmpeg: %+v", s)
	}
	var user, entry string
	for _, l := range final.lines {
		switch f := strings.Fields(l); strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENTRYPOINT", "CMD":
			entry = strings.TrimSpace(l[len(f[0]):])
			if strings.Contains(entry, "/bin/sh") || !strings.HasPrefix(entry, "[") {
				t.Errorf("%s must be exec form without a shell: %s", f[0], entry)
			}
		case "RUN":
			t.Errorf("final stage runs %q: the distroless runtime has no shell to run it", l)
		}
	}
	var args []string
	if err := json.Unmarshal([]byte(entry), &args); err != nil || len(args) < 2 || args[0] != "/usr/bin/pulsevault" || args[1] != "fn" {
		t.Errorf("entrypoint %q: want [\"/usr/bin/pulsevault\", \"fn\", ...] (%v)", entry, err)
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("USER %q: want a numeric non-root uid (Kubernetes runAsNonRoot needs a number)", user)
	}
	// stack.yml asks for FFmpeg only with the values the Dockerfile has stages for.
	for n, f := range readStack(t).Functions {
		if v, ok := f.BuildArgs["FFMPEG"]; ok {
			if _, has := byName["runtime-"+v]; !has {
				t.Errorf("stack.yml %s: FFMPEG=%q has no runtime-%s stage", n, v, v)
			}
		}
	}
}

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
			Targets []struct {
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

// The systemd units parse and, where systemd-analyze exists, verify (with the unit's binaries
// pointed at the ones built here).
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(infraDir(t), "systemd")
	units, _ := filepath.Glob(filepath.Join(dir, "*.service"))
	if len(units) < 4 {
		t.Fatalf("want bootstrap, provider, deploy and connector units, have %v", units)
	}
	tmp := t.TempDir()
	bin := buildPulsevault(t)
	for _, u := range append(units, filepath.Join(dir, "pulsevault.target")) {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]map[string][]string{}
		var cur string
		for i, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case l == "" || strings.HasPrefix(l, "#"):
			case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
				cur = l[1 : len(l)-1]
				sections[cur] = map[string][]string{}
			default:
				k, v, ok := strings.Cut(l, "=")
				if !ok || cur == "" {
					t.Fatalf("%s:%d: not key=value in a section: %q", u, i+1, l)
				}
				sections[cur][k] = append(sections[cur][k], v)
			}
		}
		if sections["Unit"]["Description"] == nil || sections["Install"]["WantedBy"] == nil {
			t.Errorf("%s: needs Description and WantedBy", u)
		}
		if svc, ok := sections["Service"]; ok {
			if len(svc["ExecStart"]) == 0 || svc["User"] == nil || svc["User"][0] == "root" {
				t.Errorf("%s: needs ExecStart and a non-root User", u)
			}
			for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "PrivateTmp"} {
				if svc[k] == nil {
					t.Errorf("%s: no %s hardening", u, k)
				}
			}
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/pulsevault", bin)
		s = strings.ReplaceAll(s, "/usr/local/bin/faas-cli", faasCLI(t))
		if err := os.WriteFile(filepath.Join(tmp, filepath.Base(u)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units parsed only")
		return
	}
	files, _ := filepath.Glob(filepath.Join(tmp, "*"))
	cmd := exec.Command(sa, append([]string{"verify"}, files...)...)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// nginxVars are the placeholders infra/nginx/pulsevault.conf documents.
var nginxVars = []string{"PULSEVAULT_SERVER_NAME", "PULSEVAULT_HTTP_LISTEN", "PULSEVAULT_HTTPS_LISTEN",
	"PULSEVAULT_TLS_CERT", "PULSEVAULT_TLS_KEY", "PULSEVAULT_GATEWAY", "PULSEVAULT_S3_URL", "PULSEVAULT_S3_CA", "PULSEVAULT_VITALS_ROOT", "PULSEVAULT_LOG_DIR"}

// nginxSite is the shipped config rendered for a test: a temp prefix, loopback ports, a
// generated certificate, and a main config that runs in the foreground and touches no system path.
type nginxSite struct {
	dir, main, accessLog, errorLog string
	https, http                    string // host:port
	certFile                       string
}

func renderNginx(t *testing.T, gateway, s3URL string) *nginxSite {
	t.Helper()
	dir := t.TempDir()
	s := &nginxSite{dir: dir, https: freeAddr(t), http: freeAddr(t)}
	cert, key, _, err := origin.SelfSigned(filepath.Join(dir, "tls"), "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	s.certFile = cert
	for _, d := range []string{"logs", "tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte("<!doctype html><title>Vitals</title>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{
		"PULSEVAULT_SERVER_NAME": "localhost", "PULSEVAULT_HTTP_LISTEN": s.http, "PULSEVAULT_HTTPS_LISTEN": s.https,
		"PULSEVAULT_TLS_CERT": s.certFile, "PULSEVAULT_TLS_KEY": key, "PULSEVAULT_GATEWAY": gateway, "PULSEVAULT_S3_URL": s3URL,
		"PULSEVAULT_S3_CA":       s.certFile, // any PEM certificate: the tests' store is plain http
		"PULSEVAULT_VITALS_ROOT": filepath.Join(dir, "www"), "PULSEVAULT_LOG_DIR": filepath.Join(dir, "logs"),
	}
	tpl, err := os.ReadFile(filepath.Join(infraDir(t), "nginx", "pulsevault.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, v := range nginxVars {
		pairs = append(pairs, "${"+v+"}", vals[v])
	}
	conf := strings.NewReplacer(pairs...).Replace(string(tpl))
	if left := regexp.MustCompile(`\$\{PULSEVAULT_[A-Z_]+\}`).FindAllString(conf, -1); len(left) > 0 {
		t.Fatalf("unknown placeholders left in the nginx config: %v", left)
	}
	if err := os.WriteFile(filepath.Join(dir, "pulsevault.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.accessLog = filepath.Join(dir, "logs", "pulsevault-access.log")
	s.errorLog = filepath.Join(dir, "logs", "error.log")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers read the temp dirs t.TempDir made 0700
	}
	tmp := filepath.Join(dir, "tmp")
	main := fmt.Sprintf(`%sdaemon off;
worker_processes 2;
pid %s/nginx.pid;
error_log %s info;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    access_log off;
    include %s/pulsevault.conf;
}
`, user, dir, s.errorLog, tmp, tmp, tmp, tmp, tmp, dir)
	s.main = filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(s.main, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func nginxBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if b, err := exec.LookPath(p); err == nil {
			return b
		}
	}
	t.Fatal("nginx is not installed (make deps installs it: APT_PACKAGES)")
	return ""
}

func (s *nginxSite) args(extra ...string) []string {
	return append([]string{"-p", s.dir, "-e", s.errorLog, "-c", s.main}, extra...)
}

// `nginx -t` accepts the shipped config, and the config keeps the rules the design sets.
func TestNginxConfigTest(t *testing.T) {
	t.Parallel()
	s := renderNginx(t, "127.0.0.1:1", "http://127.0.0.1:2")
	out, err := exec.Command(nginxBin(t), s.args("-t")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	conf, _ := os.ReadFile(filepath.Join(s.dir, "pulsevault.conf"))
	c := string(conf)
	for _, want := range []string{
		"ssl_protocols TLSv1.2 TLSv1.3;", " ssl http2;", "proxy_buffering off;", "proxy_request_buffering off;",
		"limit_req zone=pulsevault_api", "limit_req zone=pulsevault_upload", "limit_req zone=pulsevault_media",
		"proxy_pass http://pulsevault_gateway/function/media/;", "proxy_pass http://pulsevault_gateway/function/upload/;",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("nginx config lacks %q", want)
		}
	}
	// Only TLS 1.2 and 1.3; the log format holds nothing a token or PHI could ride in.
	if m := regexp.MustCompile(`ssl_protocols ([^;]*);`).FindStringSubmatch(c); m == nil || m[1] != "TLSv1.2 TLSv1.3" {
		t.Errorf("ssl_protocols %v: want TLSv1.2 TLSv1.3", m)
	}
	lf := regexp.MustCompile(`(?s)log_format pulsevault[^;]*;`).FindString(c)
	if lf == "" || !strings.Contains(lf, "$pulsevault_log_path") {
		t.Errorf("log_format pulsevault must log $pulsevault_log_path: %q", lf)
	}
	for _, bad := range []string{"$request_uri", "$request\"", "$request ", "$args", "$query_string", "$http_referer", "$uri", "$http_authorization"} {
		if strings.Contains(lf, bad) {
			t.Errorf("log_format pulsevault logs %s", bad)
		}
	}
	// Every server logs with the redacting format (Debian's http-level access_log would not).
	for i, srv := range strings.Split(c, "server {")[1:] {
		if !strings.Contains(srv, "access_log "+filepath.Join(s.dir, "logs")+"/pulsevault-access.log pulsevault;") {
			t.Errorf("server block %d does not log with the pulsevault format", i)
		}
	}
	// A broken config is refused: the check above can fail.
	if err := os.WriteFile(filepath.Join(s.dir, "pulsevault.conf"), []byte(c+"\nserver { listen nope; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginxBin(t), s.args("-t")...).CombinedOutput(); err == nil {
		t.Fatalf("nginx -t accepted a broken config:\n%s", out)
	}
}

// start runs nginx in the foreground as a child and waits until it answers.
func (s *nginxSite) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(nginxBin(t), s.args()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful stop
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			el, _ := os.ReadFile(s.errorLog)
			t.Logf("nginx output:\n%s\nerror log:\n%s", out.String(), el)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.https, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			t.Fatalf("nginx exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s in 10s:\n%s", s.https, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The shipped nginx config in front of a real provider: HTTPS with HTTP/2, a tus upload to the
// upload function, sign-url, a 206 range of a real segment from the media function, the
// routes it must not publish, and access logs without tokens or PHI.
func TestNginxSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st := startPlayback(t, "60s")
	if code, _, body := st.p.do(http.MethodPost, "/system/functions", types.FunctionDeployment{
		Service: "upload", Image: "pulsevault-upload:dev", Secrets: []string{"pulsevault-jwt-secret"},
	}, true); code != http.StatusAccepted {
		t.Fatalf("deploy upload: %d %s", code, body)
	}
	s := renderNginx(t, strings.TrimPrefix(st.p.url, "http://"), st.s3)
	s.start(t)

	pem, err := os.ReadFile(s.certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("certificate does not parse")
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	base := "https://" + s.https

	// TLS 1.2 is the floor; HTTP/2 is offered.
	res, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("healthz: %d over %s, want 200 over HTTP/2", res.StatusCode, res.Proto)
	}
	old := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", s.https, old); err == nil {
		c.Close()
		t.Error("nginx accepted TLS 1.1")
	}
	if code, hdr, _ := get(t, client, "http://"+s.http+"/api/sign-url"); code != http.StatusMovedPermanently || !strings.HasPrefix(hdr.Get("Location"), "https://") {
		t.Errorf("plain HTTP: %d %v, want a redirect to https", code, hdr)
	}

	// tus through /api/upload/: creation, the body in one PATCH, and the offset read back.
	jwt := st.jwt(t, "uploader-1")
	clip := filepath.Join(t.TempDir(), phiName+".mp4")
	payload := bytes.Repeat([]byte("pulsevault tus through nginx\n"), 40000) // ~1.1 MB: over nginx's default 1m body limit
	if err := os.WriteFile(clip, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	tc := &tusclient.Client{Endpoint: base + "/api/upload/", Token: jwt, HTTP: client, ChunkSize: int64(len(payload))}
	up, err := tc.Upload(ctx, clip, map[string]string{"filename": phiName + ".mp4", "filetype": "video/mp4"})
	if err != nil {
		t.Fatalf("tus upload through nginx: %v", err)
	}
	if !strings.HasPrefix(up, base+"/api/upload/") {
		t.Errorf("upload URL %q is not under the public /api/upload/", up)
	}
	code, hdr, _ := func() (int, http.Header, []byte) {
		req, _ := http.NewRequest(http.MethodHead, up, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+jwt)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header, nil
	}()
	if code != 200 || hdr.Get("Upload-Offset") != fmt.Sprint(len(payload)) {
		t.Errorf("HEAD upload: %d offset %q, want 200 and %d", code, hdr.Get("Upload-Offset"), len(payload))
	}

	// sign-url, then a range of a real segment through /media/.
	code, signed, raw := signURL(t, client, base+"/api/sign-url", jwt, fmt.Sprintf(`{"video":%q}`, st.video))
	if code != 200 || !strings.HasPrefix(signed.URL, "/media/") {
		t.Fatalf("sign-url through nginx: %d %s", code, raw)
	}
	tok := strings.SplitN(strings.TrimPrefix(signed.URL, "/media/"), "/", 2)[0]
	if code, _, body := get(t, client, base+signed.URL); code != 200 || !bytes.HasPrefix(body, []byte("#EXTM3U")) {
		t.Fatalf("master playlist through nginx: %d %.80q", code, body)
	}
	var segKey string
	for k := range st.hlsFiles {
		if strings.HasSuffix(k, ".m4s") && (segKey == "" || k < segKey) {
			segKey = k
		}
	}
	if segKey == "" {
		t.Fatal("no segment staged")
	}
	segURL := base + "/media/" + tok + "/" + segKey
	code, hdr, body := get(t, client, segURL, "Range", "bytes=0-9")
	want := st.hlsFiles[segKey]
	if code != http.StatusPartialContent || !bytes.Equal(body, want[:10]) || hdr.Get("Content-Range") != fmt.Sprintf("bytes 0-9/%d", len(want)) {
		t.Fatalf("range through nginx: %d %q %q, want 206 with the first 10 bytes of %d", code, hdr.Get("Content-Range"), body, len(want))
	}
	if code, _, body := get(t, client, segURL); code != 200 || !bytes.Equal(body, want) {
		t.Errorf("whole segment through nginx: %d, %d bytes of %d", code, len(body), len(want))
	}
	// nginx passes the store's 416 as it is: its Content-Range is the store's to give (versitygw
	// gives none; the dev origin asks the store for the size instead, see TestHTTPDetails).
	if code, _, body := get(t, client, segURL, "Range", fmt.Sprintf("bytes=%d-", len(want))); code != http.StatusRequestedRangeNotSatisfiable || string(body) != "range not satisfiable\n" {
		t.Errorf("unsatisfiable range through nginx: %d %q, want 416 without the store's XML", code, body)
	}
	func() { // the events stream flows for a client that sends no Accept (curl's */*)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		req.Header.Set("Accept", "*/*")
		c := *client
		c.Timeout = 0
		res, err := c.Do(req)
		if err != nil {
			t.Errorf("events through nginx without Accept: %v", err)
			return
		}
		defer res.Body.Close()
		buf := make([]byte, 64)
		n, _ := res.Body.Read(buf)
		if res.StatusCode != 200 || !strings.Contains(string(buf[:n]), "connected") {
			t.Errorf("events through nginx without Accept: %d %q", res.StatusCode, buf[:n])
		}
	}()
	// Those bytes came from the store through the internal location, not through the function,
	// and nothing of the store's answer but the bytes reached the client.
	for _, h := range []string{"X-Accel-Redirect", "X-Amz-Request-Id", "X-Amz-Version-Id", "X-Pulsevault-Offload"} {
		if v := hdr.Get(h); v != "" {
			t.Errorf("segment answer carries %s: %q", h, v)
		}
	}
	if hdr.Get("Cache-Control") != "private, no-store" || hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("segment answer headers: %v", hdr)
	}
	fm := scrapeMetrics(t, st.p.url+"/function/media/_/metrics")
	if n := total(fm["media_offloaded_total"]); n < 3 {
		t.Errorf("media_offloaded_total %v after a playlist and two segment GETs through nginx", n)
	}
	if n := total(fm["media_bytes_served_total"]); n != 0 {
		t.Errorf("the media function itself served %v bytes; nginx should have", n)
	}
	missing := base + "/media/" + tok + "/" + path.Dir(segKey) + "/no-such-segment.m4s"
	if code, _, body := get(t, client, missing); code != http.StatusNotFound || string(body) != "not found\n" {
		t.Errorf("missing segment through nginx: %d %q, want 404 without the store's XML", code, body)
	}
	if code, _, body := get(t, client, "https://"+s.https+"/_pulsevault_s3/"+st.bucket+"/"+segKey); code != http.StatusNotFound || bytes.Equal(body, want) {
		t.Errorf("the internal store location answered a client: %d", code)
	}

	// What nginx must refuse or not publish.
	for _, c := range []struct {
		path string
		want int
	}{
		{"/media/" + tok + "x/" + segKey, 403},              // forged token: the media function says no
		{"/media/_/health", 403},                            // the function's own diagnostics
		{"/media/" + tok + "/videos/%2e%2e/" + segKey, 403}, // escaped dot-segments: refused, not normalized and served
		{"/system/functions", 404},                          // the gateway's admin API is not public
		{"/function/echo", 404},                             // nor are functions by their gateway path
		{"/api/nothing", 404},                               // unknown API
		{"/", 200},                                          // Vitals
	} {
		if code, _, _ := get(t, client, base+c.path); code != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, code, c.want)
		}
	}

	// The access log: JSON lines, the token redacted, no PHI, no query strings.
	var lines []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(s.accessLog)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) >= 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	logText := strings.Join(lines, "\n")
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil || e["request_id"] == "" {
			t.Errorf("access log line is not JSON: %v: %s", err, l)
		}
	}
	if !strings.Contains(logText, `"path":"/media/<token>/`+segKey+`"`) || !strings.Contains(logText, `"status":206`) {
		t.Errorf("access log lacks the redacted media range request:\n%s", logText)
	}
	for _, secret := range []string{tok, phiName, jwt, "?"} {
		if strings.Contains(logText, secret) {
			t.Errorf("access log holds %.24q:\n%s", secret, logText)
		}
	}

	// The gateway's own series saw the calls, labelled by function and code only.
	_, _, metrics := st.p.do(http.MethodGet, "/metrics", nil, false)
	// (The media function answers the offloaded range 200: nginx turns it into the store's 206.)
	if !regexp.MustCompile(`(?m)^gateway_function_invocation_total\{code="200",function_name="media[^"]*"\} [1-9]`).MatchString(metrics) {
		t.Errorf("gateway metrics lack media invocations")
	}
	for _, leak := range []string{st.video, tok, phiName, "uploader-1"} {
		if strings.Contains(metrics, leak) {
			t.Errorf("gateway metrics hold %.24q", leak)
		}
	}
}
