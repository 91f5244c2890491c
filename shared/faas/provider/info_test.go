package provider_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/faas/provider"
)

// /system/info answers in the shape its caller reads: faas-cli, talking to
// the provider as its gateway, gets the gateway's (provider, version, arch);
// the real OpenFaaS gateway in front of it (which always sets
// X-Forwarded-For on what it forwards) gets a provider's ProviderInfo, and
// wraps it in its own answer. Before, the gateway's block came back empty.
func TestInfoShapeByCaller(t *testing.T) {
	g := start(t, func(o *provider.Options) { o.Version = "1.2.3"; o.SHA = "abc123" })

	var direct provider.GatewayInfo
	r := g.must(200, g.do(http.MethodGet, "/system/info", nil, true), "info")
	if err := json.Unmarshal([]byte(r.body), &direct); err != nil || direct.Provider == nil || direct.Provider.Name != "pulsevault" {
		t.Fatalf("faas-cli's view: %s (%v)", r.body, err)
	}

	var behind types.ProviderInfo
	r = g.must(200, g.do(http.MethodGet, "/system/info", nil, true, "X-Forwarded-For", "127.0.0.1:40000", "X-Forwarded-Host", "gateway.openfaas:8080"), "info via gateway")
	if err := json.Unmarshal([]byte(r.body), &behind); err != nil || behind.Name != "pulsevault" ||
		behind.Orchestration != "pulsevault-process" || behind.Version == nil || behind.Version.Release != "1.2.3" || behind.Version.SHA != "abc123" {
		t.Fatalf("the gateway's view: %s (%v)", r.body, err)
	}
}
