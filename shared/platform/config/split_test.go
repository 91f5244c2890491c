package config

import (
	"reflect"
	"strings"
	"testing"
)

// Every shared setting reaches its part of Config: set each to a valid
// value other than its default and the Config must change. A Var declared
// but never read into Config (or read into the wrong concern) fails here.
func TestConfigReadsEveryVar(t *testing.T) {
	other := map[string]string{
		"PULSEVAULT_DATA_DIR": "/tmp/pv-other", "NATS_URL": "nats://127.0.0.1:1", "NATS_PORT": "1", "NATS_REPLICAS": "3",
		"S3_ENDPOINT": "http://127.0.0.1:2", "S3_PORT": "2", "S3_REGION": "eu-west-1", "S3_ACCESS_KEY": "other",
		"S3_SECRET_KEY": "other-secret", "BUCKET_UPLOADS": "o-uploads", "BUCKET_MEDIA": "o-media", "BUCKET_AUDIT": "o-audit",
		"MEDIA_RETENTION_DAYS": "1", "AUDIT_RETENTION_DAYS": "2", "GATEWAY_PORT": "3", "PUBLIC_PORT": "4",
		"PUBLIC_TLS": "self-signed", "PUBLIC_TLS_CERT": "c.pem", "PUBLIC_TLS_KEY": "k.pem", "STACK_FILE": "other.yml",
		"JWKS_URL": "https://idp.example/jwks", "JWT_ISSUER": "i", "JWT_AUDIENCE": "a", "JWT_ROLES_CLAIM": "realm.roles",
		"EVENT_SUBJECT": "o.events", "LOCK_CHECK": "warn", "LOG_LEVEL": "debug",
		"OIDC_ISSUER": "https://idp.example/realms/x", "OIDC_ALGORITHMS": "ES256", "OIDC_VITALS_CLIENT_ID": "v2",
		"OIDC_CLI_CLIENT_ID": "c2", "OIDC_CA_FILE": "ca.pem", "AUTH_LEEWAY": "5s", "AUTH_HS256": "on",
	}
	base := map[string]string{"NATS_URL": "nats://127.0.0.1:1", "SECRETS_DIR": t.TempDir()} // NATS_REPLICAS=3 needs it
	def, err := Load("t", nil, env(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		val, ok := other[v.Env]
		if !ok {
			t.Errorf("%s: no test value (add one)", v.Env)
			continue
		}
		m := map[string]string{v.Env: val}
		for k, b := range base {
			if k != v.Env {
				m[k] = b
			}
		}
		if v.Env == "NATS_URL" {
			m[v.Env] = "nats://127.0.0.1:9"
		}
		c, err := Load("t", nil, env(m))
		if err != nil {
			t.Errorf("%s=%s: %v", v.Env, m[v.Env], err)
			continue
		}
		if reflect.DeepEqual(c, def) {
			t.Errorf("%s=%s changed nothing in Config", v.Env, m[v.Env])
		}
	}
	// The concerns are separate values: storage, the bus, ... take theirs alone.
	c, err := Load("t", []string{"--s3-endpoint=http://127.0.0.1:9", "--s3-secret-key", "long-enough", "--nats-url", "nats://h:1"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	ep, region, _, secret, err := c.Store.S3()
	if err != nil || ep != "http://127.0.0.1:9" || region != "us-east-1" || secret != "long-enough" || c.Bus.NATSURL != "nats://h:1" {
		t.Errorf("Store.S3() = %q %q %q %v; Bus %+v", ep, region, secret, err, c.Bus)
	}
	if _, _, _, _, err := (Store{}).S3(); err == nil || !strings.Contains(err.Error(), "S3_SECRET_KEY") {
		t.Errorf("no secret: %v", err)
	}
}
