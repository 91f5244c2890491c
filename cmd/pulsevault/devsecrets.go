package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/openfaas/faas-provider/types"

	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/pulse/captoken"
)

// devSecrets are the secrets `pulsevault dev` creates on first start, each
// with a generator of a fresh random value. Production deployments create
// them with `faas-cli secret create` (see README).
var devSecrets = map[string]func() (string, error){
	"pulsevault-jwt-secret": secrets.Random(32),
	"pulsevault-audit-key":  secrets.Random(32), // Ed25519 seed
	"pulsevault-media-keys": func() (string, error) { return token.GenerateKeyLine("dev1") },
	captoken.SecretName:     func() (string, error) { return token.GenerateKeyLine("dev1") },
	// stack.yml lists it for every function; the local store and NATS use no TLS.
	secrets.CAName: func() (string, error) {
		return "# no private CA: the local stack's store and NATS are on 127.0.0.1\n", nil
	},
}

// ensureDevSecrets creates, through the gateway's own secrets API, each dev
// secret that does not exist yet; existing ones are kept, so tokens and
// signatures stay valid across restarts. The S3 credential secrets that
// stack.yml lists (each function's own, infra/policies) are all set to the
// local store's one credential on every start (the provider's environment
// also passes it to its children).
func ensureDevSecrets(ctx context.Context, gw *gateway, cfg config.Config, listed []string) error {
	password, err := os.ReadFile(gw.p.PasswordFile())
	if err != nil {
		return err
	}
	call := func(method string, body any) ([]byte, error) {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, gw.url+"/system/secrets", rd)
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(gw.p.User(), strings.TrimSpace(string(password)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s /system/secrets: %d %s", method, resp.StatusCode, bytes.TrimSpace(out))
		}
		return out, nil
	}
	out, err := call(http.MethodGet, nil)
	if err != nil {
		return err
	}
	var have []types.Secret
	if err := json.Unmarshal(out, &have); err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	names := make([]string, 0, len(have))
	for _, s := range have {
		names = append(names, s.Name)
	}
	for name, gen := range devSecrets {
		if slices.Contains(names, name) {
			continue
		}
		v, err := gen()
		if err != nil {
			return err
		}
		if _, err := call(http.MethodPost, types.Secret{Name: name, Value: v}); err != nil {
			return fmt.Errorf("create secret %s: %w", name, err)
		}
	}
	s3 := slices.Sorted(maps.Values(config.SecretFiles))
	for _, name := range listed {
		if _, ok := config.CredentialOf(name); ok && !slices.Contains(s3, name) {
			s3 = append(s3, name)
		}
	}
	for _, name := range s3 {
		v := cfg.S3AccessKey
		if env, _ := config.CredentialOf(name); env == "S3_SECRET_KEY" {
			v = cfg.S3SecretKey
		}
		method := http.MethodPost
		if slices.Contains(names, name) {
			method = http.MethodPut
		}
		if _, err := call(method, types.Secret{Name: name, Value: v}); err != nil {
			return fmt.Errorf("set secret %s: %w", name, err)
		}
	}
	return nil
}

// devSecret reads a dev secret's value from the provider's secret store.
func devSecret(dataDir, name string) ([]byte, error) {
	return os.ReadFile(dataDir + "/secrets/" + name)
}
