package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/mieweb/pulsevault/shared/platform/config"
)

func noEnv(string) string { return "" }

// Regression (issue 16): the audit command's hand-written flag splitter took
// the value of --s3-endpoint for a positional argument, so
// `--s3-endpoint URL --nats-url URL` lost both settings.
func TestAuditSettingsFlags(t *testing.T) {
	const s3, nats = "http://127.0.0.1:9123", "nats://127.0.0.1:4321"
	for _, tc := range []struct {
		sub  string
		args []string
		pos  []string
	}{
		{"verify", []string{"--s3-endpoint", s3, "--nats-url", nats}, nil},
		{"verify", []string{"--s3-endpoint=" + s3, "--nats-url=" + nats}, nil},
		{"verify", []string{"-s3-endpoint", s3, "--nats-url=" + nats, "--from-dir", "/tmp"}, nil},
		{"prove", []string{"7", "--s3-endpoint", s3, "--nats-url", nats}, []string{"7"}},
		{"prove", []string{"--s3-endpoint", s3, "7", "--nats-url=" + nats, "--bucket-audit", "my-audit"}, []string{"7"}},
		{"pubkey", []string{"--nats-url", nats, "--s3-endpoint", s3}, nil},
	} {
		f, cfg, err := parseAudit(tc.sub, tc.args, io.Discard, noEnv)
		if err != nil {
			t.Errorf("%s %q: %v", tc.sub, tc.args, err)
			continue
		}
		if cfg.S3Endpoint != s3 || cfg.NATSURL != nats || !slices.Equal(f.args, tc.pos) {
			t.Errorf("%s %q: S3_ENDPOINT %q NATS_URL %q positional %q", tc.sub, tc.args, cfg.S3Endpoint, cfg.NATSURL, f.args)
		}
		if slices.Contains(tc.args, "my-audit") && cfg.AuditBucket != "my-audit" {
			t.Errorf("%q: BUCKET_AUDIT %q", tc.args, cfg.AuditBucket)
		}
	}
	// The environment still counts, and a flag wins over it.
	env := func(k string) string {
		return map[string]string{"S3_ENDPOINT": "http://127.0.0.1:1", "BUCKET_AUDIT": "env-audit"}[k]
	}
	_, cfg, err := parseAudit("verify", []string{"--s3-endpoint", s3}, io.Discard, env)
	if err != nil || cfg.S3Endpoint != s3 || cfg.AuditBucket != "env-audit" {
		t.Errorf("flag over env: %q %q %v", cfg.S3Endpoint, cfg.AuditBucket, err)
	}
	// Bad values are the caller's, in one line naming the variable.
	for _, args := range [][]string{{"--s3-endpoint", "ftp://x:1"}, {"--nats-url=nats://h"}, {"--nope"}, {"--public-key", "not-a-key"}} {
		_, _, err := parseAudit("verify", args, io.Discard, noEnv)
		if err == nil || !errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want a one-line usage error", args, err)
		}
	}
}

// Every flag of every audit subcommand, its own and the settings, is in -h.
func TestAuditHelpShowsEveryFlag(t *testing.T) {
	for _, sub := range []string{"verify", "prove", "pubkey", "check-proof", "keygen"} {
		var out bytes.Buffer
		err := runAudit(context.Background(), []string{sub, "-h"}, &out, io.Discard)
		if err != nil {
			t.Fatalf("%s -h: %v", sub, err)
		}
		fs, _, _, err := auditFlagSet(sub, io.Discard, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		fs.VisitAll(func(fl *flag.Flag) {
			n++
			if !strings.Contains(out.String(), "-"+fl.Name+" ") && !strings.Contains(out.String(), "-"+fl.Name+"\n") {
				t.Errorf("audit %s -h does not show -%s", sub, fl.Name)
			}
		})
		if sub == "verify" {
			for _, v := range config.Vars {
				if !strings.Contains(out.String(), "-"+v.Flag) || !strings.Contains(out.String(), v.Env) {
					t.Errorf("audit verify -h lacks --%s (%s)", v.Flag, v.Env)
				}
			}
			if n < len(config.Vars)+3 {
				t.Errorf("verify has %d flags, want the %d settings and its own 3", n, len(config.Vars))
			}
		}
	}
}

// The commands that take the shared settings show every one of them in -h.
func TestSettingsHelpShowsEveryFlag(t *testing.T) {
	for name, run := range map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"dev": runDev, "bootstrap": runBootstrap, "provider": runProvider, "connector": runConnector,
	} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"-h"}, &out, io.Discard); err != nil {
			t.Fatalf("%s -h: %v", name, err)
		}
		for _, v := range config.Vars {
			if !strings.Contains(out.String(), "--"+v.Flag+" ") || !strings.Contains(out.String(), v.Env) {
				t.Errorf("%s -h lacks --%s (%s)", name, v.Flag, v.Env)
			}
		}
	}
}
