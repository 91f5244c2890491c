package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// toolOrSkip finds a program `make tools` builds (or a Debian one on PATH).
// A missing one skips the test, except under CI, which installs everything:
// there nothing may skip.
func toolOrSkip(t *testing.T, name string) string {
	t.Helper()
	tier.Integration(t, name)
	p, err := localstack.FindBinary(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI installs every tool: nothing may skip)", err)
		}
		t.Skip(err)
	}
	return p
}

// sharedTools is ../shared/tools beside the repository (the upstream charts
// and the sources the module proxy cannot serve), as the Makefile finds it.
func sharedTools(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("PULSEVAULT_SHARED_TOOLS"),
		filepath.Join(repoRoot(t), "..", "shared", "tools"), filepath.Join(repoRoot(t), "..", "..", "shared", "tools")}
	for _, d := range cands {
		if fi, err := os.Stat(filepath.Join(d, "charts")); d != "" && err == nil && fi.IsDir() {
			return d
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("../shared/tools (the upstream charts) not found: CI must have it")
	}
	t.Skip("../shared/tools (the upstream charts) not found")
	return ""
}

// rendered is one object kuberender decoded.
type rendered struct {
	Source, Kind, APIVersion, Name, Namespace string
	Object                                    map[string]any
}

// kuberender runs bin/kuberender: Helm's template engine, then a strict
// decode of every object into the Kubernetes API types.
func kuberender(t *testing.T, args ...string) (objs []rendered, strictErrs string, err error) {
	t.Helper()
	cmd := exec.Command(toolOrSkip(t, "kuberender"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if jerr := json.Unmarshal(stdout.Bytes(), &objs); jerr != nil && err == nil {
		err = jerr
	}
	return objs, stderr.String(), err
}

// chart is one upstream chart and our values for it.
type chart struct{ name, release, namespace, values string }

var ourCharts = []chart{
	{"openfaas", "openfaas", "openfaas", "openfaas-values.yaml"},
	{"nats", "nats", "nats", "nats-values.yaml"},
}

// render renders c with our values and fails on any strict decoding error.
func (c chart) render(t *testing.T) []rendered {
	t.Helper()
	objs, errs, err := kuberender(t, "-chart", filepath.Join(sharedTools(t), "charts", c.name),
		"-values", filepath.Join(infraDir(t), "helm", c.values), "-release", c.release, "-namespace", c.namespace)
	if err != nil {
		t.Fatalf("helm template %s with infra/helm/%s, strictly decoded: %v\n%s", c.name, c.values, err, errs)
	}
	return objs
}

func find(objs []rendered, kind, name string) map[string]any {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o.Object
		}
	}
	return nil
}

// containerEnv is a container's env as name → value.
func containerEnv(pod any, container string) map[string]string {
	out := map[string]string{}
	cs, _ := dig(pod, "containers").([]any)
	for _, c := range cs {
		if dig(c, "name") != container {
			continue
		}
		env, _ := dig(c, "env").([]any)
		for _, e := range env {
			n, _ := dig(e, "name").(string)
			v, _ := dig(e, "value").(string)
			out[n] = v
		}
	}
	return out
}

// Our values rendered against the upstream charts (OpenFaaS 15.0.6, NATS 2.14.2) give objects
// that decode strictly into the Kubernetes API types: what `helm install` would send and the
// API server accept. (securityContext: true rendered a boolean into four pods, for one.)
func TestHelmChartsRenderStrictly(t *testing.T) {
	t.Parallel()
	for _, c := range ourCharts {
		t.Run(c.name, func(t *testing.T) {
			objs := c.render(t)
			if len(objs) < 5 {
				t.Fatalf("%s rendered only %d objects", c.name, len(objs))
			}
			for _, o := range objs {
				if o.Namespace != "" && o.Namespace != c.namespace && o.Kind != "Namespace" {
					if !(c.name == "openfaas" && o.Namespace == "openfaas-fn") {
						t.Errorf("%s %s lands in namespace %s", o.Kind, o.Name, o.Namespace)
					}
				}
			}
		})
	}
}

// The manifests of infra/k8s decode strictly too: an unknown or misspelt field fails here,
// not at `kubectl apply`.
func TestK8sManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(infraDir(t), "k8s", "*.yaml"))
	objs, errs, err := kuberender(t, files...)
	if err != nil {
		t.Fatalf("infra/k8s: %v\n%s", err, errs)
	}
	if len(objs) < 10 {
		t.Fatalf("infra/k8s holds only %d objects", len(objs))
	}
}

// valuePaths lists every key path of a values document ("gateway.resources.limits.memory"),
// with the value found there.
func valuePaths(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		out[prefix] = v
		return
	}
	for k, sub := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		valuePaths(p, sub, out)
	}
}

// chartKeys is what a chart reads: the key paths of its values.yaml (a leaf that is an empty
// map or a list takes anything below it) and every .Values.x.y its templates name.
func chartKeys(t *testing.T, dir string) (defaults map[string]any, refs map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	defaults = map[string]any{}
	valuePaths("", v, defaults)
	refs = map[string]bool{}
	re := regexp.MustCompile(`\.Values\.([A-Za-z0-9_.]+)`)
	err = filepath.WalkDir(filepath.Join(dir, "templates"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		tb, err := os.ReadFile(p)
		for _, m := range re.FindAllSubmatch(tb, -1) {
			refs[strings.TrimSuffix(string(m[1]), ".")] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return defaults, refs
}

// unknownKeys lists our key paths the chart does not read, and those whose type differs from
// the chart's default (a map where we set a scalar, say).
func unknownKeys(ours map[string]any, defaults map[string]any, refs map[string]bool) []string {
	var bad []string
	for p, v := range ours {
		known := false
		parts := strings.Split(p, ".")
		for i := len(parts); i > 0 && !known; i-- {
			q := strings.Join(parts[:i], ".")
			d, isLeaf := defaults[q]
			switch {
			case isLeaf && i == len(parts):
				known = true
				dm, dIsMap := d.(map[string]any)
				_, vIsMap := v.(map[string]any)
				_, dIsList := d.([]any)
				_, vIsList := v.([]any)
				if (dIsMap && dm != nil && !vIsMap) || (dIsList && !vIsList && v != nil) {
					bad = append(bad, fmt.Sprintf("%s: the chart's default is a %T, ours a %T (%v)", p, d, v, v))
				}
			case isLeaf: // below a free-form leaf: {} or [] or null in values.yaml
				if _, isMap := d.(map[string]any); isMap || d == nil {
					known = true
				}
			case refs[q]: // a template reads it (as a whole, below here)
				known = true
			}
		}
		if !known {
			bad = append(bad, p+": the chart neither defines nor reads it")
		}
	}
	slices.Sort(bad)
	return bad
}

// Every key our values set is one the chart reads, with the type it expects: a key the chart
// ignores (faasnetes.imagePullPolicy) only seems to configure something.
func TestHelmValuesKeysKnownToCharts(t *testing.T) {
	t.Parallel()
	for _, c := range ourCharts {
		defaults, refs := chartKeys(t, filepath.Join(sharedTools(t), "charts", c.name))
		docs := yamlFile(t, filepath.Join(infraDir(t), "helm", c.values))
		ours := map[string]any{}
		valuePaths("", docs[0], ours)
		for _, b := range unknownKeys(ours, defaults, refs) {
			t.Errorf("infra/helm/%s: %s", c.values, b)
		}
	}
}

// minioChartKeys are the value paths of the MinIO chart 5.4.0 (helm/minio/values.yaml and the
// templates of minio/minio at its release commit 43a740296, read there: the chart is AGPL
// and cannot be vendored). A path ending in "*" takes anything below it (toYaml'd maps, the
// environment, lists).
var minioChartKeys = strings.Fields(`
nameOverride fullnameOverride clusterDomain image.repository image.tag image.pullPolicy
imagePullSecrets mcImage.repository mcImage.tag mcImage.pullPolicy mode additionalLabels.*
additionalAnnotations.* ignoreChartChecksums extraArgs extraVolumes extraVolumeMounts
extraContainers minioAPIPort minioConsolePort deploymentUpdate.type deploymentUpdate.maxUnavailable
deploymentUpdate.maxSurge statefulSetUpdate.updateStrategy priorityClassName runtimeClassName
rootUser rootPassword existingSecret certsPath configPathmc mountPath bucketRoot drivesPerNode
replicas pools tls.enabled tls.certSecret tls.publicCrt tls.privateKey trustedCertsSecret
persistence.enabled persistence.annotations.* persistence.existingClaim persistence.storageClass
persistence.volumeName persistence.accessMode persistence.size persistence.subPath service.type
service.clusterIP service.port service.nodePort service.loadBalancerIP service.externalIPs
service.annotations.* service.loadBalancerSourceRanges service.externalTrafficPolicy ingress.*
consoleService.type consoleService.clusterIP consoleService.port consoleService.nodePort
consoleService.loadBalancerIP consoleService.externalIPs consoleService.annotations.*
consoleService.loadBalancerSourceRanges consoleService.externalTrafficPolicy consoleIngress.*
nodeSelector.* tolerations affinity.* topologySpreadConstraints securityContext.*
containerSecurityContext.* podAnnotations.* podLabels.* resources.* policies makePolicyJob.*
users makeUserJob.* svcaccts makeServiceAccountJob.* buckets makeBucketJob.* customCommands
customCommandJob.* postJob.* environment.* extraSecret oidc.enabled oidc.configUrl oidc.clientId
oidc.clientSecret oidc.existingClientSecretName oidc.existingClientIdKey
oidc.existingClientSecretKey oidc.claimName oidc.scopes oidc.redirectUri oidc.claimPrefix
oidc.comment oidc.displayName networkPolicy.enabled networkPolicy.flavor networkPolicy.allowExternal
networkPolicy.egressEntities podDisruptionBudget.enabled podDisruptionBudget.maxUnavailable
serviceAccount.create serviceAccount.name metrics.serviceMonitor.* etcd.*`)

// minioFixed is the first MinIO release with both the PutObjectRetention authorisation fix
// (437dd4e32, RELEASE.2025-02-18T16-25-55Z) and CVE-2025-31489's (8c7097528, unsigned-trailer
// signatures); the chart's default, RELEASE.2024-12-18T13-15-44Z, has neither.
const minioFixed = "RELEASE.2025-04-03T14-56-28Z"

// minio-values.yaml sets only keys the MinIO chart reads, pins an image with the Object Lock
// and signature fixes, keeps the notification queue off the drive MinIO serves, and leaves
// buckets to bootstrap.
func TestMinIOValues(t *testing.T) {
	t.Parallel()
	docs := yamlFile(t, filepath.Join(infraDir(t), "helm", "minio-values.yaml"))
	ours := map[string]any{}
	valuePaths("", docs[0], ours)
	for p := range ours {
		ok := false
		for _, k := range minioChartKeys {
			if p == k || (strings.HasSuffix(k, ".*") && strings.HasPrefix(p+".", strings.TrimSuffix(k, "*"))) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("minio-values.yaml: %s is not a key of the MinIO chart 5.4.0", p)
		}
	}
	repo, _ := dig(docs[0], "image", "repository").(string)
	tag, _ := dig(docs[0], "image", "tag").(string)
	if repo == "" || !regexp.MustCompile(`^RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$`).MatchString(tag) || tag < minioFixed {
		t.Errorf("minio-values.yaml: image %s:%s must be pinned to a release at or after %s", repo, tag, minioFixed)
	}
	root, _ := dig(docs[0], "bucketRoot").(string)
	mount, _ := dig(docs[0], "mountPath").(string)
	if mount == "" {
		mount = "/export" // the chart's default
	}
	queue, _ := dig(docs[0], "environment", "MINIO_NOTIFY_NATS_QUEUE_DIR_PRIMARY").(string)
	if root == "" || !strings.HasPrefix(root, mount+"/") || queue == "" || !strings.HasPrefix(queue, mount+"/") ||
		strings.HasPrefix(queue+"/", root+"/") {
		t.Errorf("minio-values.yaml: the NATS queue dir %q must be on the volume (%s) but outside the drive MinIO serves (bucketRoot %q)", queue, mount, root)
	}
}

// longestExec is the longest exec_timeout of the stack.yml functions (all of them, or those
// with a topic annotation when topics is set).
func longestExec(t *testing.T, topics bool) time.Duration {
	t.Helper()
	st := readStack(t)
	var longest time.Duration
	for name, env := range readStackEnv(t) {
		if topics && st.Functions[name].Annotations["topic"] == "" {
			continue
		}
		if d, err := time.ParseDuration(env["exec_timeout"]); err == nil && d > longest {
			longest = d
		}
	}
	if longest == 0 {
		t.Fatal("no exec_timeout in stack.yml")
	}
	return longest
}

// What the rendered OpenFaaS chart runs: timeouts that outlast the slowest function in the
// gateway, faas-netes and the queue worker; containers with a real security context; and, on
// CE, the alertmanager whose alerts are CE's only autoscaler (alertmanager.create: false turned
// it off, so com.openfaas.scale.max did nothing).
func TestOpenFaaSChartRender(t *testing.T) {
	t.Parallel()
	objs := ourCharts[0].render(t)
	longest := longestExec(t, false)
	gw := dig(find(objs, "Deployment", "gateway"), "spec", "template", "spec")
	if gw == nil {
		t.Fatal("no gateway Deployment")
	}
	atLeast := func(what, v string) {
		d, err := time.ParseDuration(v)
		if err != nil || d < longest {
			t.Errorf("%s = %q: must be at least stack.yml's longest exec_timeout (%s)", what, v, longest)
		}
	}
	env := containerEnv(gw, "gateway")
	for _, k := range []string{"read_timeout", "write_timeout", "upstream_timeout"} {
		atLeast("gateway "+k, env[k])
	}
	env = containerEnv(gw, "faas-netes")
	for _, k := range []string{"read_timeout", "write_timeout"} {
		atLeast("faas-netes "+k, env[k])
	}
	atLeast("queue-worker ack_wait", containerEnv(dig(find(objs, "Deployment", "queue-worker"), "spec", "template", "spec"), "queue-worker")["ack_wait"])

	for _, o := range objs {
		// The chart gives the alertmanager and CE's queue worker (queueworker-ce-dep.yaml) no
		// security context of ours: both run as their images' users.
		if o.Kind != "Deployment" || o.Name == "alertmanager" || o.Name == "queue-worker" {
			continue
		}
		cs, _ := dig(o.Object, "spec", "template", "spec", "containers").([]any)
		for _, c := range cs {
			sc := dig(c, "securityContext")
			if dig(sc, "runAsNonRoot") != true || dig(sc, "allowPrivilegeEscalation") != false {
				t.Errorf("Deployment %s container %v: securityContext %v must run as non-root without privilege escalation", o.Name, dig(c, "name"), sc)
			}
		}
	}

	vals := yamlFile(t, filepath.Join(infraDir(t), "helm", "openfaas-values.yaml"))[0]
	if dig(vals, "openfaasPro") != true {
		scales := false
		for _, f := range stackLabels(t) {
			if f["com.openfaas.scale.max"] != "" && f["com.openfaas.scale.max"] != f["com.openfaas.scale.min"] {
				scales = true
			}
		}
		if scales && find(objs, "Deployment", "alertmanager") == nil {
			t.Error("CE with functions that may scale (scale.max above scale.min) needs the alertmanager: alertmanager.create must be true")
		}
	}
}

// stackLabels is each stack.yml function's labels.
func stackLabels(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Functions map[string]struct {
			Labels    map[string]string `yaml:"labels"`
			Namespace string            `yaml:"namespace"`
		} `yaml:"functions"`
	}
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for n, f := range s.Functions {
		out[n] = f.Labels
		if f.Namespace != "" {
			out[n]["namespace"] = f.Namespace
		}
	}
	return out
}

// ceMaxReplicas is OpenFaaS CE's replica limit (faas-netes pkg/handlers/replica_reader.go,
// the gateway's scaling.DefaultMaxReplicas).
const ceMaxReplicas = 5

// With the Community Edition chosen (openfaas-values.yaml openfaasPro: false), stack.yml must
// deploy on CE: faas-netes CE (pkg/handlers/validate.go, deploy.go at 662ce9c) refuses
// com.openfaas.scale.min/max above 5, scale-to-zero and the scale target/type labels, a topic
// annotation with several topics, and any namespace but the chart's functionNamespace.
func TestStackFitsOpenFaaSCE(t *testing.T) {
	t.Parallel()
	vals := yamlFile(t, filepath.Join(infraDir(t), "helm", "openfaas-values.yaml"))[0]
	if dig(vals, "openfaasPro") == true {
		t.Skip("OpenFaaS Standard/Enterprise chosen: CE limits do not apply")
	}
	ns, _ := dig(vals, "functionNamespace").(string)
	st := readStack(t)
	for name, labels := range stackLabels(t) {
		for _, k := range []string{"com.openfaas.scale.min", "com.openfaas.scale.max"} {
			if v, ok := labels[k]; ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > ceMaxReplicas {
					t.Errorf("%s: %s %q: CE accepts 1–%d", name, k, v, ceMaxReplicas)
				}
			}
		}
		if labels["com.openfaas.scale.zero"] == "true" {
			t.Errorf("%s: com.openfaas.scale.zero is not available on CE", name)
		}
		for _, k := range []string{"com.openfaas.scale.zero-duration", "com.openfaas.scale.target", "com.openfaas.scale.type"} {
			if _, ok := labels[k]; ok {
				t.Errorf("%s: %s is not available on CE", name, k)
			}
		}
		if v := labels["namespace"]; v != "" && v != ns {
			t.Errorf("%s: namespace %s: CE deploys to %s only", name, v, ns)
		}
		if strings.Contains(st.Functions[name].Annotations["topic"], ",") {
			t.Errorf("%s: CE takes one topic per function", name)
		}
	}
}

// promTargets is every static target host:port of a scrape config.
func promTargets(t *testing.T, file string) []string {
	t.Helper()
	var out []string
	for _, j := range dig(yamlFile(t, file)[0], "scrape_configs").([]any) {
		sc, _ := dig(j, "static_configs").([]any)
		for _, s := range sc {
			out = append(out, toStrings(dig(s, "targets"))...)
		}
	}
	return out
}

// Every address the Kubernetes Prometheus config scrapes exists: a static target names a
// Service port the charts or infra/k8s create (gateway.openfaas:8082 did not: the Service
// exposes 8080, the gateway's metrics are on its pods' port gw-metrics), and a pod or
// endpoints job finds the named port where it looks.
func TestPrometheusTargetsExist(t *testing.T) {
	t.Parallel()
	services := map[string]bool{} // name.namespace:port
	pods := map[string]bool{}     // namespace/port-name and namespace/port-number
	add := func(objs []rendered, ns string) {
		for _, o := range objs {
			if o.Namespace != "" {
				ns = o.Namespace
			}
			switch o.Kind {
			case "Service":
				ports, _ := dig(o.Object, "spec", "ports").([]any)
				for _, p := range ports {
					services[fmt.Sprintf("%s.%s:%v", o.Name, ns, dig(p, "port"))] = true
				}
			case "Deployment", "StatefulSet":
				cs, _ := dig(o.Object, "spec", "template", "spec", "containers").([]any)
				for _, c := range cs {
					ports, _ := dig(c, "ports").([]any)
					for _, p := range ports {
						pods[fmt.Sprintf("%s/%v", ns, dig(p, "name"))] = true
						pods[fmt.Sprintf("%s/%v", ns, dig(p, "containerPort"))] = true
					}
				}
			}
		}
	}
	for _, c := range ourCharts {
		add(c.render(t), c.namespace)
	}
	files, _ := filepath.Glob(filepath.Join(infraDir(t), "k8s", "*.yaml"))
	objs, errs, err := kuberender(t, files...)
	if err != nil {
		t.Fatalf("infra/k8s: %v\n%s", err, errs)
	}
	add(objs, "")
	// The MinIO chart (not renderable here): Service "minio" (the release's full name) on
	// service.port, 9000 unless minio-values.yaml says otherwise.
	minio := yamlFile(t, filepath.Join(infraDir(t), "helm", "minio-values.yaml"))[0]
	port := "9000"
	if p := dig(minio, "service", "port"); p != nil {
		port = fmt.Sprint(p)
	}
	services["minio.minio:"+port] = true

	file := filepath.Join(infraDir(t), "prometheus", "prometheus.yml")
	for _, tg := range promTargets(t, file) {
		if !services[tg] {
			t.Errorf("prometheus.yml scrapes %s: no such Service port", tg)
		}
	}
	for _, j := range dig(yamlFile(t, file)[0], "scrape_configs").([]any) {
		sd, _ := dig(j, "kubernetes_sd_configs").([]any)
		if len(sd) == 0 || dig(sd[0], "role") != "pod" {
			continue
		}
		nss := toStrings(dig(sd[0], "namespaces", "names"))
		rl, _ := dig(j, "relabel_configs").([]any)
		for _, r := range rl {
			src := toStrings(dig(r, "source_labels"))
			if len(src) != 1 || dig(r, "action") != "keep" || len(nss) != 1 || nss[0] == "openfaas-fn" {
				continue
			}
			re, _ := dig(r, "regex").(string)
			switch src[0] {
			case "__meta_kubernetes_pod_container_port_name", "__meta_kubernetes_pod_container_port_number":
				if !pods[nss[0]+"/"+re] {
					t.Errorf("prometheus.yml job %v keeps pod port %s in %s: no pod there has it", dig(j, "job_name"), re, nss[0])
				}
			}
		}
	}
}

// Both Prometheus configs pass Debian's promtool, which checks every field, regex and the
// files they name (the Kubernetes config's CA is mounted from the pulsevault-ca secret in the
// cluster: a real file stands in for it). Debian builds Prometheus without Kubernetes service
// discovery, so there the kubernetes_sd_configs blocks are checked here instead (role and
// keys, as Prometheus 3 reads them) and promtool gets each job with a static target in their
// place, its relabelling and the rest unchanged.
func TestPromtoolCheckConfig(t *testing.T) {
	t.Parallel()
	promtool := toolOrSkip(t, "promtool")
	dir := t.TempDir()
	ca, _, _, err := origin.SelfSigned(filepath.Join(dir, "ca"), "minio.minio")
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, cfg map[string]any) (string, error) {
		b, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/etc/prometheus/secrets/pulsevault-ca/ca.crt"), []byte(ca))
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "check", "config", f).CombinedOutput()
		return string(out), err
	}
	roles := []string{"pod", "endpoints", "endpointslice", "service", "node", "ingress"}
	sdKeys := []string{"role", "namespaces", "selectors", "api_server", "kubeconfig_file", "attach_metadata"}
	for _, name := range []string{"prometheus.yml", "prometheus-single-node.yml"} {
		cfg := yamlFile(t, filepath.Join(infraDir(t), "prometheus", name))[0]
		out, err := check(name, cfg)
		if err == nil {
			continue
		}
		if !strings.Contains(out, "field kubernetes_sd_configs not found") {
			t.Errorf("promtool check config %s: %v\n%s", name, err, out)
			continue
		}
		for _, j := range cfg["scrape_configs"].([]any) {
			job := j.(map[string]any)
			sd, ok := job["kubernetes_sd_configs"].([]any)
			if !ok {
				continue
			}
			for _, c := range sd {
				for k := range c.(map[string]any) {
					if !slices.Contains(sdKeys, k) {
						t.Errorf("%s job %v: kubernetes_sd_configs has no key %s", name, job["job_name"], k)
					}
				}
				if r, _ := dig(c, "role").(string); !slices.Contains(roles, r) {
					t.Errorf("%s job %v: kubernetes_sd_configs role %q is not one of %v", name, job["job_name"], r, roles)
				}
				for k := range dig(c, "namespaces").(map[string]any) {
					if k != "names" && k != "own_namespace" {
						t.Errorf("%s job %v: kubernetes_sd_configs namespaces has no key %s", name, job["job_name"], k)
					}
				}
			}
			delete(job, "kubernetes_sd_configs")
			job["static_configs"] = []any{map[string]any{"targets": []any{"kubernetes-sd.invalid:80"}}}
		}
		if out, err := check(name, cfg); err != nil {
			t.Errorf("promtool check config %s (Kubernetes discovery as static targets): %v\n%s", name, err, out)
		}
	}
}

// The rendered NATS chart is the 3-node JetStream cluster the rest assumes: three servers
// whose nats.conf the NATS server itself accepts (parsed with the server we embed), with
// JetStream on a file store and routes to all three; and every NATS_REPLICAS infra/ sets is at
// most the cluster's size (a stream cannot have more copies than servers).
func TestNATSChartRender(t *testing.T) {
	t.Parallel()
	objs := ourCharts[1].render(t)
	sts := find(objs, "StatefulSet", "nats")
	n, _ := dig(sts, "spec", "replicas").(float64)
	if n != 3 {
		t.Fatalf("NATS StatefulSet has %v replicas, want 3", n)
	}
	conf, _ := dig(find(objs, "ConfigMap", "nats-config"), "data", "nats.conf").(string)
	f := filepath.Join(t.TempDir(), "nats.conf")
	// $SERVER_NAME is the pod's environment (its name).
	if err := os.WriteFile(f, []byte(strings.ReplaceAll(conf, "$SERVER_NAME", `"nats-0"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(f)
	if err != nil {
		t.Fatalf("the rendered nats.conf does not load: %v\n%s", err, conf)
	}
	if !opts.JetStream || opts.StoreDir == "" || len(opts.Routes) != 3 || opts.Cluster.Port == 0 {
		t.Errorf("nats.conf: jetstream %v store %q routes %d cluster port %d; want JetStream on a file store and 3 routes",
			opts.JetStream, opts.StoreDir, len(opts.Routes), opts.Cluster.Port)
	}
	want := fmt.Sprint(int(n))
	for fn, env := range readStackEnv(t) {
		if v := env["NATS_REPLICAS"]; v != "${NATS_REPLICAS:-"+want+"}" {
			t.Errorf("stack.yml %s: NATS_REPLICAS %q, want ${NATS_REPLICAS:-%s} (the cluster's size)", fn, v, want)
		}
	}
	for _, d := range yamlFile(t, filepath.Join(infraDir(t), "k8s", "bootstrap-job.yaml")) {
		env := map[string]string{}
		cs, _ := dig(d, "spec", "template", "spec", "containers").([]any)
		for _, c := range cs {
			for _, e := range dig(c, "env").([]any) {
				if v, ok := dig(e, "value").(string); ok {
					env[dig(e, "name").(string)] = v
				}
			}
		}
		if env["NATS_REPLICAS"] != want {
			t.Errorf("bootstrap-job.yaml: NATS_REPLICAS %q, want %s: bootstrap makes the streams", env["NATS_REPLICAS"], want)
		}
	}
}
