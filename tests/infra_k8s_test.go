package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

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
