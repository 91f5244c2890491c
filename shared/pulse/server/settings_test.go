package server

import (
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadSettings(t *testing.T) {
	c, err := LoadSettings(env())
	if err != nil || c.PairingTTL != 30*time.Minute || c.ViewTTL != 300*time.Second || c.Issuer != "pulsevault" || c.PublicURL != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if c, err := LoadSettings(env("PAIRING_PUBLIC_URL", "https://vault.example.org/")); err != nil || c.PublicURL != "https://vault.example.org" {
		t.Fatalf("public URL: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"PAIRING_TTL", "25h"},
		{"PAIRING_TTL", "10s"},
		{"VIEW_LINK_TTL", "2h", "VIEW_LINK_MAX_TTL", "1h"},
		{"VIEW_LINK_MAX_TTL", "48h"},
		{"PAIRING_PUBLIC_URL", "ftp://x"},
		{"PAIRING_PUBLIC_URL", "https://vault.example.org/pulsevault"},
		{"PAIRING_ISSUER", strings.Repeat("x", 201)},
	} {
		if _, err := LoadSettings(env(bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}
