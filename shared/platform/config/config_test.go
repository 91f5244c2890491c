package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load("t", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSPort != 4222 || c.S3Port != 9000 || c.MediaBucket != "pulse-media" || !c.LocalS3() || !c.LocalNATS() {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if !strings.HasSuffix(c.DataDir, ".pulsevault") || !strings.HasPrefix(c.DataDir, "/") {
		t.Fatalf("data dir not absolute: %q", c.DataDir)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := Load("t", []string{"--s3-port", "9100"}, env(map[string]string{"S3_PORT": "9200", "NATS_PORT": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.S3Port != 9100 || c.NATSPort != 0 {
		t.Fatalf("got s3 %d nats %d", c.S3Port, c.NATSPort)
	}
}

func TestBadValues(t *testing.T) {
	cases := []struct{ env, val, want string }{
		{"S3_ENDPOINT", "::bad", "S3_ENDPOINT"},
		{"S3_ENDPOINT", "ftp://x:1", "scheme"},
		{"S3_ENDPOINT", "http://host", "host:port"},
		{"NATS_URL", "nats://h:99999", "port"},
		{"MEDIA_RETENTION_DAYS", "-1", "from 1 to 36500"},
		{"AUDIT_RETENTION_DAYS", "x", "whole number"},
		{"S3_PORT", "70000", "S3_PORT"},
		{"BUCKET_MEDIA", "Bad_Name", "bucket name"},
		{"BUCKET_AUDIT", "-ab", "bucket name"},
		{"LOCK_CHECK", "off", "strict, warn"},
		{"LOG_LEVEL", "loud", "debug"},
		{"EVENT_SUBJECT", "a.*", "wildcards"},
		{"S3_SECRET_KEY", "short", "8 characters"},
		{"JWT_ROLES_CLAIM", "realm_access..roles", "dotted path"},
		{"JWT_ROLES_CLAIM", "roles.", "dotted path"},
		{"JWT_ROLES_CLAIM", "my roles", "claim name"},
	}
	for _, tc := range cases {
		_, err := Load("t", nil, env(map[string]string{tc.env: tc.val}))
		if err == nil {
			t.Errorf("%s=%q accepted", tc.env, tc.val)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.env) || !strings.Contains(msg, tc.want) {
			t.Errorf("%s=%q: error %q should be one line naming %s and %q", tc.env, tc.val, msg, tc.env, tc.want)
		}
	}
	if _, err := Load("t", []string{"--nope"}, env(nil)); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := Load("t", []string{"stray"}, env(nil)); err == nil {
		t.Error("stray argument accepted")
	}
}

// The README's configuration table must list every variable the code reads.
func TestREADMEListsEveryVar(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(b), "`"+v.Env+"`") {
			t.Errorf("README.md does not document %s", v.Env)
		}
	}
}

// Unset S3 credentials come from the function's secrets, as stack.yml
// provides them; the environment still wins.
func TestS3CredentialsFromSecrets(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"pulsevault-s3-access-key": "from-secret\n", "pulsevault-s3-secret-key": "secret-from-file\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"SECRETS_DIR": dir}
	getenv := func(k string) string { return env[k] }
	c, err := Load("t", nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.S3AccessKey != "from-secret" || c.S3SecretKey != "secret-from-file" {
		t.Fatalf("credentials %q / %q, want the secrets' values", c.S3AccessKey, c.S3SecretKey)
	}
	env["S3_SECRET_KEY"] = "env-wins-here"
	if c, err = Load("t", nil, getenv); err != nil || c.S3SecretKey != "env-wins-here" {
		t.Fatalf("env should win over the secret: %q, %v", c.S3SecretKey, err)
	}
	env = map[string]string{"SECRETS_DIR": t.TempDir()}
	if c, err = Load("t", nil, getenv); err != nil || c.S3AccessKey != "pulsevault" {
		t.Fatalf("no secret: want the default, got %q, %v", c.S3AccessKey, err)
	}
}

// Regression (issue 15, finding 8): no well-known S3 secret. Unset and
// without a secret file, the secret is empty (pulsevault dev generates one
// for its own store; everything else refuses to start, see CheckS3).
func TestNoWellKnownS3Secret(t *testing.T) {
	c, err := Load("t", nil, env(map[string]string{"SECRETS_DIR": t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	if c.S3SecretKey != "" {
		t.Fatalf("S3 secret defaults to %q", c.S3SecretKey)
	}
	for _, v := range Vars {
		if v.Env == "S3_SECRET_KEY" && v.Default != "" {
			t.Fatalf("S3_SECRET_KEY has the default %q", v.Default)
		}
	}
}

// A function's own S3 user (issue 15, finding 10): its pair of secrets
// comes before the shared pair, and pairs are never mixed.
func TestS3CredentialsPerFunction(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{
		"pulsevault-s3-access-key": "shared-user", "pulsevault-s3-secret-key": "shared-secret",
		"pulsevault-s3-upload-access-key": "upload-user", "pulsevault-s3-upload-secret-key": "upload-secret",
		"pulsevault-s3-media-access-key": "half-a-pair",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	getenv := env(map[string]string{"SECRETS_DIR": dir})
	for fn, want := range map[string]string{"upload": "upload-user/upload-secret", "videos": "shared-user/shared-secret",
		"media": "shared-user/shared-secret", "audit verify": "shared-user/shared-secret"} {
		c, err := Load(fn, nil, getenv)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.S3AccessKey + "/" + c.S3SecretKey; got != want {
			t.Errorf("%s: credentials %s, want %s", fn, got, want)
		}
	}
	for secret, want := range map[string]string{"pulsevault-s3-access-key": "S3_ACCESS_KEY", "pulsevault-s3-upload-finalize-secret-key": "S3_SECRET_KEY",
		"pulsevault-s3-media-access-key": "S3_ACCESS_KEY", "pulsevault-s3--secret-key": "", "pulsevault-jwt-secret": "", "pulsevault-s3-a/b-access-key": ""} {
		if got, _ := CredentialOf(secret); got != want {
			t.Errorf("CredentialOf(%s) = %q, want %q", secret, got, want)
		}
	}
	if got := FunctionSecretFile("S3_SECRET_KEY", "sign-url"); got != "pulsevault-s3-sign-url-secret-key" {
		t.Errorf("FunctionSecretFile: %s", got)
	}
}
