package tests

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/mieweb/pulsevault/shared/faas/connector"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/settings"
)

// composeEnv is what an operator exports before `docker compose up` (the
// variables compose.yaml requires with ${VAR:?}).
var composeEnv = map[string]string{
	"OIDC_ISSUER":            "https://idp.example.org/realms/clinic",
	"PULSEVAULT_SERVER_NAME": "video.example.org",
}

// loadCompose loads infra/compose/compose.yaml with the compose-spec loader
// (what `docker compose config` uses): schema validation, interpolation,
// merge keys, consistency of networks, volumes, secrets and depends_on.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	dir := filepath.Join(infraDir(t), "compose")
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: maps.Clone(env), // the loader writes into it (COMPOSE_PROJECT_NAME); tests share composeEnv
	}, func(o *loader.Options) { o.SetProjectName("pulsevault", true) })
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// allServices are the services with those of every profile (alloy: "logs").
func allServices(p *types.Project) types.Services {
	all := maps.Clone(p.Services)
	maps.Copy(all, p.DisabledServices)
	return all
}

// pulsevaultServices run the image built from infra/compose/Dockerfile.
var pulsevaultServices = []string{"bootstrap", "provider", "deploy", "connector"}

// TestComposeLoads: the file is valid Compose, needs OIDC_ISSUER and the
// public host name, and holds the services the stack needs.
func TestComposeLoads(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeEnv)
	want := []string{"nats", "minio", "s3-users", "bootstrap", "provider", "deploy", "connector", "nginx"}
	for _, n := range want {
		if _, ok := p.Services[n]; !ok {
			t.Errorf("no service %s", n)
		}
	}
	for _, missing := range []string{"OIDC_ISSUER", "PULSEVAULT_SERVER_NAME"} {
		env := map[string]string{}
		for k, v := range composeEnv {
			if k != missing {
				env[k] = v
			}
		}
		dir := filepath.Join(infraDir(t), "compose")
		_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
			WorkingDir:  dir,
			ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
			Environment: env,
		}, func(o *loader.Options) { o.SetProjectName("pulsevault", true) })
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: %v, want a refusal naming it", missing, err)
		}
	}
}

// TestComposeImages: every image is pinned (no latest, no bare name), the
// PulseVault images follow stack.yml's REGISTRY/TAG scheme, and the store
// is the MinIO release minio-values.yaml pins.
func TestComposeImages(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeEnv)
	// stack.yml's images with its defaults: ghcr.io/mieweb/pulsevault-<fn>:dev.
	stackImg := regexp.MustCompile(`^\$\{REGISTRY:-([^}]+)\}/pulsevault-[a-z-]+:\$\{TAG:-([^}]+)\}$`)
	var registry, tag string
	for name, f := range readStack(t).Functions {
		m := stackImg.FindStringSubmatch(f.Image)
		if m == nil {
			t.Fatalf("stack.yml %s: image %q is not ${REGISTRY:-...}/pulsevault-NAME:${TAG:-...}", name, f.Image)
		}
		registry, tag = m[1], m[2]
	}
	minio := yamlFile(t, filepath.Join(infraDir(t), "helm", "minio-values.yaml"))[0]
	minioImage := dig(minio, "image", "repository").(string) + ":" + dig(minio, "image", "tag").(string)
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:[A-Za-z0-9][A-Za-z0-9._-]*$`)
	for name, s := range allServices(p) {
		img := s.Image
		if !pinned.MatchString(img) || strings.HasSuffix(img, ":latest") {
			t.Errorf("%s: image %q is not pinned to a tag", name, img)
		}
		switch {
		case slices.Contains(pulsevaultServices, name):
			if want := registry + "/pulsevault-compose:" + tag; img != want {
				t.Errorf("%s: image %q, want %q (stack.yml's registry and tag)", name, img, want)
			}
			if name == "bootstrap" && (s.Build == nil || s.Build.Dockerfile != "infra/compose/Dockerfile") {
				t.Errorf("bootstrap builds the PulseVault image from infra/compose/Dockerfile: %+v", s.Build)
			}
		case name == "nginx":
			if want := registry + "/pulsevault-edge:" + tag; img != want {
				t.Errorf("nginx: image %q, want %q", img, want)
			}
			if s.Build == nil || s.Build.Dockerfile != "infra/nginx/Dockerfile" {
				t.Errorf("nginx builds from infra/nginx/Dockerfile: %+v", s.Build)
			}
		case name == "minio", name == "s3-users":
			if img != minioImage {
				t.Errorf("%s: image %q, want minio-values.yaml's %q", name, img, minioImage)
			}
		case name == "nats", name == "alloy":
		default:
			t.Errorf("%s: an image the test does not know: %q", name, img)
		}
	}
	// The one PulseVault image is built once (bootstrap); the others reuse it by name.
	for _, n := range pulsevaultServices[1:] {
		if p.Services[n].Build != nil {
			t.Errorf("%s builds the image again; only bootstrap builds it", n)
		}
	}
	df, err := os.ReadFile(filepath.Join(infraDir(t), "compose", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ffmpeg", "USER 10001:10001", "/out/faas-cli", "COPY stack.yml /etc/pulsevault/stack.yml", "COPY template /etc/pulsevault/template", "infra/compose/deploy.sh"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("infra/compose/Dockerfile lacks %q", want)
		}
	}
	// nginx writes its access log into the nginx-logs volume as uid 101: the image makes the
	// directory with that owner, which an empty volume takes on.
	edge, err := os.ReadFile(filepath.Join(infraDir(t), "nginx", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	logDir := *p.Services["nginx"].Environment["PULSEVAULT_LOG_DIR"]
	if !strings.Contains(string(edge), "install -d -o 101 -g 0 -m 0750 "+logDir+"\n") || !strings.HasSuffix(strings.TrimSpace(string(edge)), "USER 101") {
		t.Errorf("infra/nginx/Dockerfile does not make %s for uid 101 (and end as USER 101)", logDir)
	}
	if !slices.ContainsFunc(p.Services["nginx"].Volumes, func(v types.ServiceVolumeConfig) bool { return v.Source == "nginx-logs" && v.Target == logDir }) {
		t.Errorf("nginx's log dir %s is not the nginx-logs volume", logDir)
	}
	mk, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if v := regexp.MustCompile(`FAAS_CLI_VERSION := (\S+)`).FindSubmatch(mk); v == nil || !strings.Contains(string(df), "version.Version="+string(v[1])) {
		t.Errorf("the image's faas-cli is not the Makefile's FAAS_CLI_VERSION")
	}
}

// TestComposeNATSMatchesChart: the NATS server is the release the NATS
// chart of infra/helm runs.
func TestComposeNATSMatchesChart(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(sharedTools(t), "charts", "nats", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	if img, want := loadCompose(t, composeEnv).Services["nats"].Image, "nats:"+chart.AppVersion+"-alpine"; img != want {
		t.Errorf("nats image %q, want %q (the chart's appVersion)", img, want)
	}
}

// TestComposePorts: only nginx is reachable from outside (80/443 → its
// listeners); NATS, MinIO, the gateway and the connector publish nothing,
// and every internal address agrees with the port it names.
func TestComposePorts(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeEnv)
	ng := p.Services["nginx"].Environment
	listen := map[string]bool{*ng["PULSEVAULT_HTTP_LISTEN"]: true, *ng["PULSEVAULT_HTTPS_LISTEN"]: true}
	published := map[string]string{}
	for name, s := range p.Services {
		for _, pt := range s.Ports {
			if name != "provider" {
				t.Errorf("%s publishes port %d: only the provider's namespace (nginx) does", name, pt.Target)
			}
			published[pt.Published] = strconv.Itoa(int(pt.Target))
		}
		if len(s.Expose) > 0 {
			t.Errorf("%s exposes %v", name, s.Expose)
		}
	}
	if published["80"] != *ng["PULSEVAULT_HTTP_LISTEN"] || published["443"] != *ng["PULSEVAULT_HTTPS_LISTEN"] || len(published) != 2 {
		t.Errorf("published %v, want 80 and 443 onto nginx's listeners %v", published, listen)
	}
	// Everything that talks to the provider shares its namespace and uses its port.
	prov := p.Services["provider"].Environment
	gw := "127.0.0.1:" + *prov["GATEWAY_PORT"]
	if listen[*prov["GATEWAY_PORT"]] || listen[strings.TrimPrefix(*p.Services["connector"].Environment["CONNECTOR_METRICS_ADDR"], "127.0.0.1:")] {
		t.Errorf("nginx listens on a port the provider or connector holds")
	}
	for _, n := range []string{"deploy", "connector", "nginx"} {
		if p.Services[n].NetworkMode != "service:provider" {
			t.Errorf("%s: network_mode %q, want service:provider (the gateway listens on 127.0.0.1)", n, p.Services[n].NetworkMode)
		}
	}
	if got := *p.Services["connector"].Environment["GATEWAY_URL"]; got != "http://"+gw {
		t.Errorf("connector GATEWAY_URL %q, want http://%s", got, gw)
	}
	if got := *ng["PULSEVAULT_GATEWAY"]; got != gw {
		t.Errorf("nginx PULSEVAULT_GATEWAY %q, want %s", got, gw)
	}
	sh, err := os.ReadFile(filepath.Join(infraDir(t), "compose", "deploy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sh), "gw=http://"+gw+"\n") {
		t.Errorf("deploy.sh does not use the gateway at %s", gw)
	}
	// NATS and MinIO by the ports their services listen on (defaults of the images).
	for _, n := range []string{"bootstrap", "provider", "connector"} {
		if got := *p.Services[n].Environment["NATS_URL"]; got != "nats://nats:4222" {
			t.Errorf("%s NATS_URL %q", n, got)
		}
	}
	if got := *p.Services["minio"].Environment["MINIO_NOTIFY_NATS_ADDRESS_PRIMARY"]; got != "nats:4222" {
		t.Errorf("minio's NATS target %q", got)
	}
	s3 := *prov["S3_ENDPOINT"]
	if got := *ng["PULSEVAULT_S3_URL"]; got != s3 {
		t.Errorf("nginx PULSEVAULT_S3_URL %q, want the functions' S3_ENDPOINT %q (presigned URLs are signed for it)", got, s3)
	}
	if got := *p.Services["bootstrap"].Environment["S3_ENDPOINT"]; got != s3 {
		t.Errorf("bootstrap S3_ENDPOINT %q, want %q", got, s3)
	}
	if sh, _ := os.ReadFile(filepath.Join(infraDir(t), "compose", "s3-users.sh")); !strings.Contains(string(sh), s3) {
		t.Errorf("s3-users.sh does not talk to %s", s3)
	}
}

// composeOnlySecrets are the secrets stack.yml does not list, with why.
var composeOnlySecrets = map[string]string{
	"minio-root-user":                    "the store's root user: s3-users makes the function users with it",
	"minio-root-password":                "ditto",
	"pulsevault-s3-bootstrap-access-key": "bootstrap's own S3 user (policies/bootstrap.json); no function holds it",
	"pulsevault-s3-bootstrap-secret-key": "ditto",
	"pulsevault-public-tls-crt":          "nginx's public certificate chain",
	"pulsevault-public-tls-key":          "nginx's public key",
}

// TestComposeSecrets: the function secrets carry stack.yml's names and all
// reach the provider (through deploy), each S3 pair has its S3 user with
// the function's policy, nothing else holds a function's credentials, and
// every secret is a file under ./secrets.
func TestComposeSecrets(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeEnv)
	stackSecrets := map[string]bool{}
	s3Users := map[string]bool{"bootstrap": true}
	for fn, f := range readStack(t).Functions {
		for _, s := range f.Secrets {
			stackSecrets[s] = true
			if s == config.FunctionSecretFile("S3_SECRET_KEY", fn) {
				s3Users[fn] = true
			}
		}
	}
	secretsDir := filepath.Join(infraDir(t), "compose", "secrets")
	for name, s := range p.Secrets {
		if !stackSecrets[name] && composeOnlySecrets[name] == "" {
			t.Errorf("secret %s is neither a stack.yml secret nor a known Compose-only one", name)
		}
		if filepath.Dir(s.File) != secretsDir || filepath.Base(s.File) != name {
			t.Errorf("secret %s: file %s, want %s", name, s.File, filepath.Join(secretsDir, name))
		}
	}
	for name := range stackSecrets {
		if _, ok := p.Secrets[name]; !ok {
			t.Errorf("stack.yml's secret %s is not defined", name)
		}
	}
	holders := map[string][]string{}
	for sn, s := range p.Services {
		for _, ref := range s.Secrets {
			holders[ref.Source] = append(holders[ref.Source], sn)
			if ref.Target != "" && ref.Target != "/run/secrets/"+ref.Source {
				t.Errorf("%s: secret %s mounted at %s; the code reads /run/secrets/<name> (SECRETS_DIR)", sn, ref.Source, ref.Target)
			}
		}
	}
	for name := range p.Secrets {
		if len(holders[name]) == 0 {
			t.Errorf("secret %s is given to no service", name)
		}
	}
	for name, hs := range holders {
		for _, h := range hs {
			ok := false
			switch {
			case h == "deploy":
				ok = stackSecrets[name] // to the provider's store, for the functions that list it
			case h == "s3-users":
				env, isCred := config.CredentialOf(name)
				ok = strings.HasPrefix(name, "minio-root-") || (isCred && env != "")
			case h == "bootstrap":
				ok = strings.HasPrefix(name, "pulsevault-s3-bootstrap-")
			case h == "minio":
				ok = strings.HasPrefix(name, "minio-root-")
			case h == "nginx":
				ok = name == "pulsevault-ca" || strings.HasPrefix(name, "pulsevault-public-tls-")
			}
			if !ok {
				t.Errorf("%s holds secret %s it has no use for", h, name)
			}
		}
	}
	for name := range stackSecrets {
		if !slices.Contains(holders[name], "deploy") {
			t.Errorf("deploy does not put %s into the provider's secret store", name)
		}
	}
	// s3-users.sh makes exactly the users stack.yml's S3 pairs (and bootstrap) belong to.
	sh, err := os.ReadFile(filepath.Join(infraDir(t), "compose", "s3-users.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`for name in ([a-z -]+); do`).FindSubmatch(sh)
	if m == nil {
		t.Fatal("s3-users.sh: no user loop")
	}
	listed := map[string]bool{}
	for _, n := range strings.Fields(string(m[1])) {
		listed[n] = true
		if !s3Users[n] {
			t.Errorf("s3-users.sh makes a user for %s, which has no S3 pair in stack.yml", n)
		}
		if _, err := os.Stat(filepath.Join(infraDir(t), "policies", n+".json")); err != nil {
			t.Errorf("s3-users.sh: %v", err)
		}
		for _, env := range []string{"S3_ACCESS_KEY", "S3_SECRET_KEY"} {
			if sec := config.FunctionSecretFile(env, n); !slices.Contains(holders[sec], "s3-users") {
				t.Errorf("s3-users does not get %s", sec)
			}
		}
	}
	for n := range s3Users {
		if !listed[n] {
			t.Errorf("s3-users.sh makes no S3 user for %s", n)
		}
	}
	// make-secrets.sh writes every secret file the stack needs.
	mk, err := os.ReadFile(filepath.Join(infraDir(t), "compose", "make-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range p.Secrets {
		if !strings.Contains(string(mk), name) && !(strings.HasPrefix(name, "pulsevault-s3-") && strings.Contains(string(mk), "pulsevault-s3-$n-")) {
			t.Errorf("make-secrets.sh does not write %s", name)
		}
	}
	gi, _ := os.ReadFile(filepath.Join(infraDir(t), "compose", ".gitignore"))
	if !strings.Contains(string(gi), "secrets/") {
		t.Error("infra/compose/.gitignore does not keep secrets/ out of git")
	}
}

// TestComposeVariables: every variable given to a PulseVault process is a
// declared setting whose check accepts the value; deploy passes only what
// stack.yml interpolates; nginx gets exactly its template's placeholders;
// MinIO's notification target is minio-values.yaml's.
func TestComposeVariables(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeEnv)
	tables := map[string]settings.Table{
		"bootstrap": config.Vars,
		"provider":  config.Vars,
		"connector": settings.Join(config.Vars, connector.Settings),
	}
	for svc, table := range tables {
		for k, v := range p.Services[svc].Environment {
			if k == "SECRETS_DIR" {
				continue // the secrets package's (OpenFaaS's mount point), not a settings table
			}
			s, ok := table.Lookup(k)
			if !ok {
				t.Errorf("%s: %s is no setting of that command", svc, k)
				continue
			}
			if v == nil {
				t.Errorf("%s: %s has no value", svc, k)
			} else if s.Check != nil {
				if err := s.Check(*v); err != nil {
					t.Errorf("%s: %s=%q: %v", svc, k, *v, err)
				}
			}
		}
	}
	for _, svc := range []string{"bootstrap", "provider"} {
		if v := p.Services[svc].Environment["NATS_REPLICAS"]; v == nil || *v != "1" {
			t.Errorf("%s: NATS_REPLICAS must be 1 on the one NATS server", svc)
		}
	}
	// deploy: only variables stack.yml interpolates.
	stack, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	interp := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)`).FindAllSubmatch(stack, -1) {
		interp[string(m[1])] = true
	}
	for k := range p.Services["deploy"].Environment {
		if !interp[k] {
			t.Errorf("deploy: %s is not a variable stack.yml uses", k)
		}
	}
	if v := p.Services["deploy"].Environment["OIDC_ISSUER"]; v == nil || *v != composeEnv["OIDC_ISSUER"] {
		t.Errorf("deploy does not pass OIDC_ISSUER to stack.yml")
	}
	if *p.Services["provider"].Environment["OIDC_ISSUER"] != composeEnv["OIDC_ISSUER"] {
		t.Errorf("provider does not get OIDC_ISSUER")
	}
	// nginx: exactly the placeholders of pulsevault.conf (and the image's filter).
	conf, err := os.ReadFile(filepath.Join(infraDir(t), "nginx", "pulsevault.conf"))
	if err != nil {
		t.Fatal(err)
	}
	placeholders := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{(PULSEVAULT_[A-Z0-9_]+)\}`).FindAllSubmatch(conf, -1) {
		placeholders[string(m[1])] = true
	}
	ng := p.Services["nginx"].Environment
	for k := range placeholders {
		if ng[k] == nil || *ng[k] == "" {
			t.Errorf("nginx: placeholder %s is not set", k)
		}
	}
	for k := range ng {
		if !placeholders[k] && k != "NGINX_ENVSUBST_FILTER" {
			t.Errorf("nginx: %s is no placeholder of pulsevault.conf", k)
		}
	}
	for _, k := range []string{"PULSEVAULT_TLS_CERT", "PULSEVAULT_TLS_KEY"} {
		if !strings.HasPrefix(*ng[k], "/run/secrets/") {
			t.Errorf("nginx: %s=%s is not a secret file", k, *ng[k])
		}
	}
	// The store's CA: pulsevault-ca over https; over http any PEM (nginx loads the file either
	// way), and pulsevault-ca may be "none" then.
	if strings.HasPrefix(*ng["PULSEVAULT_S3_URL"], "https://") != (*ng["PULSEVAULT_S3_CA"] == "/run/secrets/pulsevault-ca") {
		t.Errorf("nginx: PULSEVAULT_S3_CA=%s for %s", *ng["PULSEVAULT_S3_CA"], *ng["PULSEVAULT_S3_URL"])
	}
	if *ng["PULSEVAULT_SERVER_NAME"] != composeEnv["PULSEVAULT_SERVER_NAME"] {
		t.Errorf("nginx server name %q", *ng["PULSEVAULT_SERVER_NAME"])
	}
	// MinIO: the same notification target as minio-values.yaml, subject EVENT_SUBJECT.
	values := yamlFile(t, filepath.Join(infraDir(t), "helm", "minio-values.yaml"))[0]
	helmEnv, _ := values["environment"].(map[string]any)
	me := p.Services["minio"].Environment
	for k, hv := range helmEnv {
		switch k {
		case "MINIO_NOTIFY_NATS_ADDRESS_PRIMARY": // the NATS service's name here
		default:
			if me[k] == nil || *me[k] != hv.(string) {
				t.Errorf("minio: %s=%v, minio-values.yaml has %q", k, me[k], hv)
			}
		}
	}
	ev, _ := config.Vars.Lookup("EVENT_SUBJECT")
	if *me["MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"] != ev.Default {
		t.Errorf("minio publishes to %s, the functions read EVENT_SUBJECT %s", *me["MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"], ev.Default)
	}
	if !strings.HasPrefix(*me["MINIO_NOTIFY_NATS_QUEUE_DIR_PRIMARY"], "/export/") || !slices.ContainsFunc(p.Services["minio"].Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/export" }) {
		t.Error("minio's notification queue is not on its volume")
	}
}

// TestComposeLifecycle: long-running services restart and have a health
// check; one-shots do not restart forever and what needs them waits for
// their success; the provider drains transcode before it is killed and the
// connector outlasts transcode's exec_timeout; state is on volumes.
func TestComposeLifecycle(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, composeEnv)
	oneShots := map[string]bool{"s3-users": true, "bootstrap": true}
	for name, s := range allServices(p) {
		switch {
		case oneShots[name]:
			if s.Restart != "no" {
				t.Errorf("%s (one-shot): restart %q, want no", name, s.Restart)
			}
			if s.HealthCheck != nil {
				t.Errorf("%s (one-shot) has a health check", name)
			}
		case name == "deploy":
			if s.Restart != "on-failure" {
				t.Errorf("deploy: restart %q, want on-failure (until the provider answers)", s.Restart)
			}
		default:
			if s.Restart != "unless-stopped" {
				t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
			}
			if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
				t.Errorf("%s: no health check", name)
			}
		}
		for dep, d := range s.DependsOn {
			want := types.ServiceConditionHealthy
			if oneShots[dep] {
				want = types.ServiceConditionCompletedSuccessfully
			}
			if d.Condition != want {
				t.Errorf("%s waits for %s to be %s, want %s", name, dep, d.Condition, want)
			}
		}
	}
	if p.Services["provider"].DependsOn["bootstrap"].Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("the provider does not wait for bootstrap")
	}
	if p.Services["bootstrap"].DependsOn["s3-users"].Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("bootstrap does not wait for its S3 user")
	}
	env := readStackEnv(t)["transcode"]
	wt, err := time.ParseDuration(env["write_timeout"])
	if err != nil {
		t.Fatal(err)
	}
	if g := p.Services["provider"].StopGracePeriod; g == nil || time.Duration(*g) < wt+5*time.Second {
		t.Errorf("provider stop_grace_period %v, want at least transcode's write_timeout %v + 5s", g, wt)
	}
	et, _ := time.ParseDuration(env["exec_timeout"])
	ct, err := time.ParseDuration(*p.Services["connector"].Environment["CONNECTOR_TIMEOUT"])
	if err != nil || ct <= et {
		t.Errorf("CONNECTOR_TIMEOUT %v does not outlast transcode's exec_timeout %v", ct, et)
	}
	vols := map[string]string{"nats": "/data", "minio": "/export", "provider": "/var/lib/pulsevault"}
	for svc, target := range vols {
		if !slices.ContainsFunc(p.Services[svc].Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Target == target && !v.ReadOnly
		}) {
			t.Errorf("%s: no named volume at %s", svc, target)
		}
	}
	if v := p.Services["provider"].Environment["PULSEVAULT_DATA_DIR"]; v == nil || *v != "/var/lib/pulsevault" {
		t.Errorf("provider's data dir is not its volume")
	}
	for _, n := range []string{"deploy", "connector"} {
		if !slices.ContainsFunc(p.Services[n].Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Source == "pulsevault-data" && v.ReadOnly
		}) {
			t.Errorf("%s does not read the provider's password from its volume (read-only)", n)
		}
	}
	for _, n := range append(pulsevaultServices, "nginx") {
		if !p.Services[n].ReadOnly {
			t.Errorf("%s: root file system is writable", n)
		}
	}
}

// TestComposeMakeSecrets runs make-secrets.sh (with the built pulsevault
// and Debian's openssl): it writes every secret compose.yaml names, in a
// 0700 directory, with values the consumers accept, and keeps existing
// files on a second run. The other scripts at least parse (sh -n).
func TestComposeMakeSecrets(t *testing.T) {
	t.Parallel()
	bin := buildPulsevault(t)
	src := filepath.Join(infraDir(t), "compose")
	for _, sh := range []string{"deploy.sh", "s3-users.sh", "make-secrets.sh"} {
		if out, err := exec.Command("sh", "-n", filepath.Join(src, sh)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", sh, err, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "infra", "compose")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(src, "make-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "make-secrets.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() {
		cmd := exec.Command("sh", filepath.Join(dir, "make-secrets.sh"))
		cmd.Env = append(os.Environ(), "PULSEVAULT="+bin, "PULSEVAULT_SERVER_NAME=video.example.org")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make-secrets.sh: %v\n%s", err, out)
		}
	}
	run()
	secrets := filepath.Join(dir, "secrets")
	if fi, err := os.Stat(secrets); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("secrets dir: %v %v, want mode 0700", fi, err)
	}
	first := map[string]string{}
	for name := range loadCompose(t, composeEnv).Secrets {
		b, err := os.ReadFile(filepath.Join(secrets, name))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v (%d bytes)", name, err, len(b))
			continue
		}
		v := string(b)
		first[name] = v
		switch {
		case strings.HasSuffix(name, "-secret-key") || name == "minio-root-password":
			if len(v) < 8 || len(v) > 40 {
				t.Errorf("%s: %d characters, MinIO takes 8-40", name, len(v))
			}
		case strings.HasSuffix(name, "-access-key"):
			if v != "pulsevault-"+strings.TrimSuffix(strings.TrimPrefix(name, "pulsevault-s3-"), "-access-key") {
				t.Errorf("%s = %q", name, v)
			}
		case name == "pulsevault-media-keys" || name == "pulsevault-pulse-keys":
			if !regexp.MustCompile(`^k[0-9]{8}=[A-Za-z0-9_-]{43}$`).MatchString(v) {
				t.Errorf("%s = %q, want kYYYYMMDD=<32 bytes base64url>", name, v)
			}
		case name == "pulsevault-public-tls-crt":
			blk, _ := pem.Decode(b)
			if blk == nil {
				t.Fatalf("%s: no PEM", name)
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil || !slices.Contains(c.DNSNames, "video.example.org") {
				t.Errorf("%s: %v, names %v", name, err, c.DNSNames)
			}
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(secrets, "pulsevault-public-tls-crt"), filepath.Join(secrets, "pulsevault-public-tls-key")); err != nil {
		t.Errorf("public certificate and key do not pair: %v", err)
	}
	run()
	for name, v := range first {
		if b, _ := os.ReadFile(filepath.Join(secrets, name)); string(b) != v {
			t.Errorf("%s changed on the second run", name)
		}
	}
}

// TestComposeDeployScript runs deploy.sh (with faas-cli) against a real
// `pulsevault provider`, from a directory holding only stack.yml as in the
// image: it logs in with the provider's password file, puts every function
// secret into the provider's store but not bootstrap's, deploys every
// function, and a second run (secrets already there) succeeds too.
func TestComposeDeployScript(t *testing.T) {
	t.Parallel()
	cli := faasCLI(t)
	bin := buildPulsevault(t)
	p := startProviderCmd(t, bin)
	if p.user != "admin" {
		t.Fatalf("provider user %q: deploy.sh logs in as admin", p.user)
	}
	pwFile := filepath.Join(p.data, "gateway", "basic-auth-password")
	if b, err := os.ReadFile(pwFile); err != nil || strings.TrimSpace(string(b)) != p.pass {
		t.Fatalf("the provider's password is not in %s (what deploy.sh and the connector read): %v", pwFile, err)
	}
	secrets := t.TempDir()
	want := map[string]bool{}
	for _, f := range readStack(t).Functions {
		for _, s := range f.Secrets {
			want[s] = true
			if err := os.WriteFile(filepath.Join(secrets, s), []byte(randomSecret(t)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range []string{"pulsevault-s3-bootstrap-access-key", "pulsevault-s3-bootstrap-secret-key", "minio-root-user"} {
		if err := os.WriteFile(filepath.Join(secrets, s), []byte(randomSecret(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stackDir := t.TempDir()
	stack, err := os.ReadFile(filepath.Join(repoRoot(t), "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stackDir, "stack.yml"), stack, 0o644); err != nil {
		t.Fatal(err)
	}
	// What the image holds beside it (infra/compose/Dockerfile: COPY template ...).
	if err := os.CopyFS(filepath.Join(stackDir, "template"), os.DirFS(filepath.Join(repoRoot(t), "template"))); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", filepath.Join(infraDir(t), "compose", "deploy.sh"))
		cmd.Env = append(os.Environ(),
			"PATH="+filepath.Dir(cli)+string(os.PathListSeparator)+os.Getenv("PATH"),
			"DEPLOY_GATEWAY="+p.url, "DEPLOY_PASSWORD_FILE="+pwFile, "DEPLOY_SECRETS="+secrets,
			"DEPLOY_STACK="+filepath.Join(stackDir, "stack.yml"), "DEPLOY_HOME="+t.TempDir(), "DEPLOY_ONCE=1",
			"OIDC_ISSUER="+composeEnv["OIDC_ISSUER"])
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("deploy.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	for i := range 2 {
		out := run()
		if n := strings.Count(out, "Deployed. 202 Accepted."); n != len(readStack(t).Functions) {
			t.Fatalf("run %d: %d functions deployed, want %d:\n%s", i+1, n, len(readStack(t).Functions), out)
		}
	}
	code, _, body := p.do("GET", "/system/secrets", nil, true)
	if code != 200 {
		t.Fatalf("GET /system/secrets: %d %s", code, body)
	}
	var got []struct{ Name string }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range got {
		have[s.Name] = true
		if !want[s.Name] {
			t.Errorf("the provider holds %s, no function's secret", s.Name)
		}
	}
	for s := range want {
		if !have[s] {
			t.Errorf("the provider lacks %s", s)
		}
	}
}
