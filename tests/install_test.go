package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// k8sObjects is every object of infra/k8s/*.yaml.
func k8sObjects(t *testing.T) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(infraDir(t), "k8s", "*.yaml"))
	var out []map[string]any
	for _, f := range files {
		out = append(out, yamlFile(t, f)...)
	}
	return out
}

// k8sObject is the object of kind and name in infra/k8s.
func k8sObject(t *testing.T, kind, name string) map[string]any {
	t.Helper()
	for _, d := range k8sObjects(t) {
		if d["kind"] == kind && dig(d, "metadata", "name") == name {
			return d
		}
	}
	t.Fatalf("infra/k8s has no %s %s", kind, name)
	return nil
}

// env is a workload's first container's literal environment.
func workloadEnv(d map[string]any) map[string]string {
	out := map[string]string{}
	for _, e := range dig(d, "spec", "template", "spec", "containers", 0, "env").([]any) {
		if v, ok := dig(e, "value").(string); ok {
			out[dig(e, "name").(string)] = v
		}
	}
	return out
}

// systemdTime parses a systemd time span such as 30s, 5min or 1h 30min.
func systemdTime(s string) (time.Duration, error) {
	var total time.Duration
	units := map[string]time.Duration{"": time.Second, "s": time.Second, "sec": time.Second,
		"m": time.Minute, "min": time.Minute, "h": time.Hour, "hr": time.Hour}
	parts := regexp.MustCompile(`(\d+)\s*([a-z]*)`).FindAllStringSubmatch(s, -1)
	if len(parts) == 0 {
		return 0, fmt.Errorf("not a time span: %q", s)
	}
	for _, p := range parts {
		n, _ := strconv.Atoi(p[1])
		u, ok := units[p[2]]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q in %q", p[2], s)
		}
		total += time.Duration(n) * u
	}
	return total, nil
}

// unitValues is every value of key in a systemd unit's [Service] section.
func unitValues(t *testing.T, unit, key string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(infraDir(t), "systemd", unit))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// The connector waits for an invocation as long as the slowest topic-annotated function may
// run (CONNECTOR_TIMEOUT stayed 10 min while transcode runs 30: long jobs failed and were
// retried five times), on Kubernetes and on one node.
func TestConnectorOutlastsFunctions(t *testing.T) {
	t.Parallel()
	longest := longestExec(t, true)
	check := func(where, v string) {
		if v == "" {
			v = "10m" // the connector's default
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < longest {
			t.Errorf("%s: CONNECTOR_TIMEOUT %q, must be at least the longest exec_timeout of a topic-annotated function (%s)", where, v, longest)
		}
	}
	check("infra/k8s/connector.yaml", workloadEnv(k8sObject(t, "Deployment", "pulsevault-connector"))["CONNECTOR_TIMEOUT"])
	var v string
	for _, e := range unitValues(t, "pulsevault-connector.service", "Environment") {
		for _, kv := range strings.Fields(e) {
			if s, ok := strings.CutPrefix(kv, "CONNECTOR_TIMEOUT="); ok {
				v = s
			}
		}
	}
	check("infra/systemd/pulsevault-connector.service", v)
}

// A stop gives every process the time it drains: systemd waits for the provider to drain its
// function children (each its write_timeout + 5s: the provider's grace) before SIGKILL (45s
// cut a 30-minute transcode short), and the Kubernetes pods we define wait for theirs.
func TestStopWaitsForDrains(t *testing.T) {
	t.Parallel()
	var longest time.Duration
	for _, env := range readStackEnv(t) {
		if d, err := time.ParseDuration(env["write_timeout"]); err == nil && d > longest {
			longest = d
		}
	}
	v := unitValues(t, "pulsevault-provider.service", "TimeoutStopSec")
	if len(v) != 1 {
		t.Fatalf("pulsevault-provider.service: TimeoutStopSec %v", v)
	}
	if d, err := systemdTime(v[0]); err != nil || d < longest+5*time.Second {
		t.Errorf("pulsevault-provider.service: TimeoutStopSec=%s (%v), must cover the longest write_timeout + 5s (%s)", v[0], err, longest+5*time.Second)
	}
	// nginx proxies uploads for up to 15 minutes (proxy_read_timeout).
	edge := k8sObject(t, "Deployment", "pulsevault-edge")
	if g, _ := dig(edge, "spec", "template", "spec", "terminationGracePeriodSeconds").(int); g < 15*60 {
		t.Errorf("nginx.yaml: terminationGracePeriodSeconds %d: an upload in flight has up to 15 min", g)
	}
}

// admits reports whether a NetworkPolicy lets pods of namespace ns reach port.
func admits(np map[string]any, ns string, port int) bool {
	for _, in := range dig(np, "spec", "ingress").([]any) {
		okPort := false
		for _, p := range dig(in, "ports").([]any) {
			if dig(p, "port") == port {
				okPort = true
			}
		}
		if !okPort {
			continue
		}
		for _, f := range dig(in, "from").([]any) {
			if dig(f, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name") == ns {
				return true
			}
		}
	}
	return false
}

// Once the NetworkPolicies apply, every path the install uses stays open: nginx (where it runs,
// infra/k8s/nginx.yaml) reads media from MinIO (before, minio-clients did not admit it and
// playback broke), functions, bootstrap and the connector reach NATS and MinIO, MinIO publishes
// to NATS, and the gateway reaches the functions.
func TestNetworkPoliciesAdmitTheInstall(t *testing.T) {
	t.Parallel()
	edgeNS, _ := dig(k8sObject(t, "Deployment", "pulsevault-edge"), "metadata", "namespace").(string)
	for _, c := range []struct {
		policy, ns string
		port       int
	}{
		{"minio-clients", edgeNS, 9000},
		{"minio-clients", "openfaas-fn", 9000},
		{"minio-clients", "openfaas", 9000},
		{"nats-clients", "openfaas-fn", 4222},
		{"nats-clients", "openfaas", 4222},
		{"nats-clients", "minio", 4222},
		{"functions-from-gateway", "openfaas", 8080},
	} {
		if !admits(k8sObject(t, "NetworkPolicy", c.policy), c.ns, c.port) {
			t.Errorf("NetworkPolicy %s does not admit namespace %s on port %d", c.policy, c.ns, c.port)
		}
	}
	// nginx reaches the gateway, not the functions: nothing admits it into openfaas-fn.
	if admits(k8sObject(t, "NetworkPolicy", "functions-from-gateway"), edgeNS, 8080) {
		t.Errorf("functions-from-gateway admits %s: nginx must go through the gateway", edgeNS)
	}
}

// Every function trusts the CA of the store's and NATS' certificates: stack.yml lists the
// pulsevault-ca secret for each (functions reached MinIO over https with no CA at all), and
// the pods we define that talk TLS mount it and point SSL_CERT_FILE at it.
func TestEveryComponentGetsTheCA(t *testing.T) {
	t.Parallel()
	for fn, f := range readStack(t).Functions {
		if !slices.Contains(f.Secrets, "pulsevault-ca") {
			t.Errorf("stack.yml %s: does not list secret pulsevault-ca", fn)
		}
	}
	for _, name := range []string{"pulsevault-connector", "pulsevault-bootstrap"} {
		kind := "Deployment"
		if name == "pulsevault-bootstrap" {
			kind = "Job"
		}
		d := k8sObject(t, kind, name)
		file := workloadEnv(d)["SSL_CERT_FILE"]
		mounted := false
		for _, m := range dig(d, "spec", "template", "spec", "containers", 0, "volumeMounts").([]any) {
			mp, _ := dig(m, "mountPath").(string)
			if file != "" && strings.HasPrefix(file, mp+"/") {
				for _, v := range dig(d, "spec", "template", "spec", "volumes").([]any) {
					if dig(v, "name") == dig(m, "name") && dig(v, "secret", "secretName") == "pulsevault-ca" {
						mounted = true
					}
				}
			}
		}
		if !mounted {
			t.Errorf("%s %s: SSL_CERT_FILE %q is not a file of the mounted pulsevault-ca secret", kind, name, file)
		}
	}
}

// A dashboard panel that reads the connector's series for one function names a function the
// connector delivers to (a topic annotation): "Audit queue" read connector_* for audit-append,
// which consumes its stream itself, so it could never show data.
func TestDashboardConnectorPanelsHaveData(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(infraDir(t), "grafana", "pulsevault-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	st := readStack(t)
	re := regexp.MustCompile(`connector_[a-z_]+\{[^}]*function=\\"([^"\\]+)\\"`)
	for _, m := range re.FindAllSubmatch(b, -1) {
		fn := string(m[1])
		if f, ok := st.Functions[fn]; !ok || f.Annotations["topic"] == "" {
			t.Errorf("dashboard reads %s: the connector delivers nothing to %s (no topic annotation)", m[0], fn)
		}
	}
}
