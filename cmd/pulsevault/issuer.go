package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/identity/issuer"
	"github.com/mieweb/pulsevault/shared/identity/users"
	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/logging"
)

// devUser is the account `pulsevault dev` creates on first start.
const devUser = "admin"

// identity is a started embedded provider and what to tell the console.
type identity struct {
	iss  *issuer.Issuer
	note string // first-start credentials, or how to manage users
}

// startIdentity builds the embedded OpenID provider at issuerURL for the
// Vitals of origin, creating the first user when users.yaml has none.
func startIdentity(ctx context.Context, c config.Config, b *bus.Bus, issuerURL, origin string, log *slog.Logger) (*identity, error) {
	ic, err := issuer.LoadSettings(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if ic.UsersFile == "" {
		ic.UsersFile = filepath.Join(c.DataDir, "users.yaml")
	}
	redirects := ic.RedirectURIs
	if len(redirects) == 0 {
		redirects = []string{origin + "/auth/callback", origin + "/"}
	}
	store := users.Open(ic.UsersFile)
	list, err := store.List()
	if err != nil {
		return nil, err
	}
	id := &identity{note: fmt.Sprintf("%d in %s (pulsevault user add|passwd|disable|list)", len(list), ic.UsersFile)}
	if len(list) == 0 {
		pw := users.GeneratePassword()
		if err := store.Add(users.User{ID: devUser, Name: "PulseVault admin", Roles: []string{ic.AdminRole}}, pw); err != nil {
			return nil, err
		}
		id.note = fmt.Sprintf("created %q with password %s  (shown once; change it: pulsevault user passwd %s)", devUser, pw, devUser)
	}
	id.iss, err = issuer.New(ctx, issuer.Options{
		Issuer: issuerURL, Users: store, JS: b.JetStream(), Replicas: c.NATSReplicas,
		Audit: event.NewPublisher(b, "identity"), Log: log,
		VitalsClientID: c.OIDCVitalsID, VitalsRedirectURIs: redirects, VitalsLogoutURIs: []string{origin + "/"},
		CLIClientID: c.OIDCCLIID, APIAudience: c.JWTAudience, RolesClaim: c.JWTRolesClaim,
		AccessTTL: ic.AccessTTL, RefreshTTL: ic.RefreshTTL, SigningAlg: ic.SigningAlg,
		AllowInsecure: isLoopbackHTTP(issuerURL), TrustedProxies: ic.Proxies,
	})
	if err != nil {
		return nil, err
	}
	return id, nil
}

// isLoopbackHTTP reports an http:// URL on a loopback host: the one place
// a plain-http issuer is allowed.
func isLoopbackHTTP(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())
}

const issuerUsage = `Usage: pulsevault issuer [flags]

Runs the embedded OpenID provider on its own, for a lab without an identity
provider: point the API at it with OIDC_ISSUER (printed). It keeps its state
in NATS JetStream (NATS_URL; empty starts an embedded NATS in the data dir)
and its users in IDENTITY_USERS_FILE. Settings (environment):
`

func runIssuer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "--help" {
			fmt.Fprint(stdout, issuerUsage)
			for _, s := range issuer.Settings {
				fmt.Fprintf(stdout, "  %-26s %s (default %q)\n", s.Env, s.Usage, s.Default)
			}
			fmt.Fprintln(stdout, "and the stack's settings (pulsevault dev -h).")
			return nil
		}
	}
	cfg, err := loadConfig("issuer", args, stdout)
	if err != nil {
		return err
	}
	ic, err := issuer.LoadSettings(os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log := logging.New(stderr, cfg.LogLevel, "issuer")
	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: filepath.Join(cfg.DataDir, "issuer-nats")})
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		natsURL = ns.URL()
	}
	b, err := bus.Connect(natsURL, "pulsevault-issuer")
	if err != nil {
		return err
	}
	defer b.Close()
	// Audit events need their stream (created by bootstrap on a full stack).
	for _, sc := range bootstrap.Streams(cfg) {
		if _, err := b.EnsureStream(ctx, sc); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ic.Port)))
	if err != nil {
		return fmt.Errorf("issuer: listen on 127.0.0.1:%d: %w (set ISSUER_PORT to another port, or 0)", ic.Port, err)
	}
	defer ln.Close()
	public := ic.URL
	if public == "" {
		public = "http://" + ln.Addr().String()
	}
	origin := ic.VitalsOrigin
	if origin == "" {
		origin = "http://127.0.0.1:" + strconv.Itoa(cfg.PublicPort)
	}
	id, err := startIdentity(ctx, cfg, b, public, origin, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: id.iss.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "PulseVault OpenID provider is up\n  OIDC_ISSUER   %s\n  users         %s\n  clients       %s (Vitals, code + PKCE), %s (CLI, device flow)\nReady. Press Ctrl-C to stop.\n",
		public, id.note, cfg.OIDCVitalsID, cfg.OIDCCLIID)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
