package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/faas/connector"
	"github.com/mieweb/pulsevault/shared/faas/stackfile"
	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/origin"
	"github.com/mieweb/pulsevault/shared/storage"
)

// loadConfig parses flags over the environment; -h prints the settings.
func loadConfig(name string, args []string, stdout io.Writer) (config.Config, error) {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprintf(stdout, "Usage: pulsevault %s [flags]\n\nSettings (flag, environment variable, meaning):\n", name)
			config.Usage(stdout)
			return config.Config{}, flag.ErrHelp
		}
	}
	cfg, err := config.Load(name, args, os.Getenv)
	if err != nil {
		return cfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("dev", args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if !cfg.LocalS3() {
		if err := cfg.CheckS3(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	log := logging.New(stderr, cfg.LogLevel, "dev")
	defer tracing.Init(ctx, "pulsevault-dev", log)()
	// The connector's own settings, read as `pulsevault connector` reads
	// them; the gateway is the one dev starts.
	cc, err := devConnectorConfig(os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	// Read the stack file first: a typo should fail before anything starts.
	sf, err := stackfile.ReadFile(cfg.StackFile, os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: STACK_FILE: %v", errUsage, err)
	}
	st, err := localstack.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Stop()
	c := st.Config
	// Without an issuer (and without the scripts' HS256 mode) the stack runs
	// its own OpenID provider under /oidc of the public origin: the public
	// listener comes first, since the functions are told its URL.
	var pubLn net.Listener
	if embeddedIssuer(c) {
		if pubLn, err = listenPublic(c); err != nil {
			return err
		}
		defer pubLn.Close()
		c.OIDCIssuer = publicURL(c, pubLn) + issuerPath
		if c.PublicTLS == "self-signed" && c.OIDCCAFile == "" {
			// The functions reach the issuer through the public origin: they
			// must trust its certificate (the same files startPublic uses).
			if c.OIDCCAFile, _, _, err = origin.SelfSigned(filepath.Join(c.DataDir, "tls"), "127.0.0.1", "localhost"); err != nil {
				return err
			}
		}
	}
	rep, err := bootstrapWith(ctx, c, log)
	if err != nil {
		return err
	}
	b, err := bus.Connect(c.NATSURL, "pulsevault-dev")
	if err != nil {
		return err
	}
	defer b.Close()

	reg := prometheus.NewRegistry()
	extra := http.NewServeMux()
	extra.Handle("GET /metrics/connector", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	gw, err := startGateway(c, b, logging.New(stderr, cfg.LogLevel, "provider"), extra)
	if err != nil {
		return err
	}
	defer gw.stop()
	var listed []string
	for _, d := range sf.Deployments() {
		listed = append(listed, d.Secrets...)
	}
	if err := ensureDevSecrets(ctx, gw, c, listed); err != nil {
		return err
	}
	var id *identity
	var loginToken, signIn string
	if pubLn != nil {
		origin := publicURL(c, pubLn)
		if id, err = startIdentity(ctx, c, b, c.OIDCIssuer, origin, logging.New(stderr, cfg.LogLevel, "identity")); err != nil {
			return err
		}
		// A long-lived admin token for the developer at this console only,
		// signed by the embedded provider like any access token.
		if loginToken, err = id.iss.AccessToken(ctx, devUser, 12*time.Hour); err != nil {
			loginToken = "(none: " + devUser + " is not an active user; sign in with pulsevault login)"
		}
		signIn = fmt.Sprintf("\n  issuer        %s  (OpenID provider; Vitals and pulsevault login sign in here)\n  users         %s", c.OIDCIssuer, id.note)
	} else if c.AuthHS256 {
		jwtSecret, err := devSecret(c.DataDir, auth.HS256SecretName)
		if err != nil {
			return err
		}
		if loginToken, err = auth.SignHS256(jwtSecret, c.JWTIssuer, c.JWTAudience, "dev-admin", []string{grant.AdminRole}, 12*time.Hour); err != nil {
			return err
		}
	} else {
		loginToken = "(none: tokens come from " + c.OIDCIssuer + c.JWKSURL + ")"
	}
	var deployed []string
	for _, d := range sf.Deployments() {
		if err := gw.p.Deploy(ctx, d); err != nil {
			return fmt.Errorf("deploy %s from %s: %w", d.Service, cfg.StackFile, err)
		}
		deployed = append(deployed, d.Service)
	}
	password, err := os.ReadFile(gw.p.PasswordFile())
	if err != nil {
		return err
	}
	conn, err := connector.New(devConnectorOptions(cc, gw.url, gw.p.User(), strings.TrimSpace(string(password)),
		b, logging.New(stderr, cfg.LogLevel, "connector"), reg))
	if err != nil {
		return err
	}
	var idh http.Handler
	if id != nil {
		idh = id.iss.Handler()
	}
	pub, err := startPublic(c, gw.url, logging.New(stderr, cfg.LogLevel, "public"), pubLn, idh)
	if err != nil {
		return err
	}
	defer pub.stop()
	s3secret := "secret from S3_SECRET_KEY"
	if st.S3SecretFile != "" {
		s3secret = "secret in " + st.S3SecretFile
	}
	connDone := make(chan error, 1)
	go func() { connDone <- conn.Run(ctx) }()
	defer func() { conn.Close(); <-connDone }()

	fmt.Fprintf(stdout, `PulseVault dev stack is up
  public        %s  (API /api/*, media /media/*, Pulse /pulsevault/*, Vitals)%s%s
  gateway       %s  (OpenFaaS API; user %s, password in %s)
  faas-cli      faas-cli login -g %s -u %s --password-stdin < %s
  functions     %s
  login token   %s  (JWT for the dev admin, 12 h; Authorization: Bearer ...)
  NATS          %s
  S3            %s  (access key %s; %s)
  buckets       %s (uploads), %s and %s (Object Lock, COMPLIANCE)
  WORM canary   %s
  data dir      %s
  logs          %s
Ready. Press Ctrl-C to stop.
`, pub.url, pub.note, signIn, gw.url, gw.p.User(), gw.p.PasswordFile(), gw.url, gw.p.User(), gw.p.PasswordFile(),
		strings.Join(deployed, ", "), loginToken, c.NATSURL, c.S3Endpoint, c.S3AccessKey, s3secret,
		c.UploadsBucket, c.MediaBucket, c.AuditBucket, rep.Canary, c.DataDir, filepath.Join(c.DataDir, "logs"))
	select {
	case <-ctx.Done():
	case err := <-gw.errc:
		return fmt.Errorf("gateway: %w", err)
	case err := <-connDone:
		connDone <- err
		if err != nil {
			return fmt.Errorf("connector: %w", err)
		}
		<-ctx.Done()
	}
	fmt.Fprintln(stdout, "Stopping...")
	return nil
}

func runBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("bootstrap", args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if cfg.LocalNATS() || cfg.LocalS3() {
		return fmt.Errorf("%w: bootstrap needs NATS_URL and S3_ENDPOINT (pulsevault dev bootstraps its own stack)", errUsage)
	}
	if err := cfg.CheckS3(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	rep, err := bootstrapWith(ctx, cfg, logging.New(stderr, cfg.LogLevel, "bootstrap"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created buckets: %s\ncreated streams: %s\nnotifications: %s\nWORM canary: %s\n",
		list(rep.CreatedBuckets), list(rep.CreatedStreams), rep.Notifications, rep.Canary)
	return nil
}

// bootstrapWith connects to the store and the bus in cfg and bootstraps them.
func bootstrapWith(ctx context.Context, cfg config.Config, log *slog.Logger) (bootstrap.Report, error) {
	st, err := storage.FromConfig(cfg)
	if err != nil {
		return bootstrap.Report{}, err
	}
	b, err := bus.Connect(cfg.NATSURL, "pulsevault-bootstrap")
	if err != nil {
		return bootstrap.Report{}, err
	}
	defer b.Close()
	return bootstrap.Run(ctx, cfg, st, b, log)
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// public is the local stack's public origin: the API and media routes
// (forwarded to the gateway) and, where built, the Vitals app.
type public struct {
	srv  *http.Server
	url  string
	note string // TLS fingerprint, when self-signed
}

// issuerPath is where pulsevault dev serves its OpenID provider on the
// public origin: one origin, so Vitals' redirect URIs are plain paths of it.
const issuerPath = "/oidc"

// embeddedIssuer reports whether dev runs its own OpenID provider.
func embeddedIssuer(c config.Config) bool {
	return !c.AuthHS256 && c.OIDCIssuer == "" && c.JWKSURL == ""
}

func listenPublic(c config.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.PublicPort)))
	if err != nil {
		return nil, fmt.Errorf("public origin: listen on 127.0.0.1:%d: %w (set PUBLIC_PORT to another port, or 0)", c.PublicPort, err)
	}
	return ln, nil
}

func publicURL(c config.Config, ln net.Listener) string {
	if c.PublicTLS != "off" {
		return "https://" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// startPublic serves the public origin on ln (nil: it listens itself),
// with the OpenID provider idh (nil: none) under issuerPath.
func startPublic(c config.Config, gatewayURL string, log *slog.Logger, ln net.Listener, idh http.Handler) (*public, error) {
	// Go's table lacks it; browsers want it for the PWA manifest.
	_ = mime.AddExtensionType(".webmanifest", "application/manifest+json")
	var static http.Handler
	if fi, err := os.Stat("vitals/out"); err == nil && fi.IsDir() {
		static = http.FileServer(http.Dir("vitals/out"))
	}
	h, err := origin.Handler(origin.Options{GatewayURL: gatewayURL, Static: static, Logger: log, Store: c.S3Endpoint})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	if idh != nil {
		mux.Handle(issuerPath+"/", idh)
	}
	// Vitals (a static export) learns its issuer here; behind nginx the
	// same JSON is a static file. No issuer: Vitals takes a pasted token.
	vitalsCfg, _ := json.Marshal(map[string]string{"issuer": c.OIDCIssuer, "client_id": c.OIDCVitalsID})
	mux.HandleFunc("GET /vitals-config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(vitalsCfg)
	})
	mux.Handle("/", h)
	h = mux
	srv := origin.Server(h, log)
	if ln == nil {
		if ln, err = listenPublic(c); err != nil {
			return nil, err
		}
	}
	p := &public{srv: srv, url: "http://" + ln.Addr().String()}
	cert, key := c.TLSCert, c.TLSKey
	if c.PublicTLS == "self-signed" {
		var fp string
		cert, key, fp, err = origin.SelfSigned(filepath.Join(c.DataDir, "tls"), "127.0.0.1", "localhost")
		if err != nil {
			ln.Close()
			return nil, err
		}
		p.note = "\n  TLS           self-signed, SHA-256 fingerprint " + fp
	}
	if c.PublicTLS != "off" {
		if srv.TLSConfig, err = origin.TLSConfig(cert, key); err != nil {
			ln.Close()
			return nil, err
		}
		p.url = "https://" + ln.Addr().String()
		go func() { _ = srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { _ = srv.Serve(ln) }()
	}
	return p, nil
}

func (p *public) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

// devConnectorConfig reads the connector's settings (CONNECTOR_*) the way
// `pulsevault connector` does. The gateway is dev's own, so GATEWAY_*
// and the metrics address (dev serves /metrics/connector on the gateway)
// are not the caller's to set and stand in here to pass validation.
func devConnectorConfig(getenv func(string) string) (connector.Config, error) {
	return connector.LoadConfig(func(k string) string {
		switch k {
		case "GATEWAY_URL":
			return "http://127.0.0.1:1"
		case "GATEWAY_USER":
			return "admin"
		case "GATEWAY_PASSWORD":
			return "set-by-dev"
		case "CONNECTOR_METRICS_ADDR":
			return "127.0.0.1:0"
		}
		return getenv(k)
	})
}

// devConnectorOptions is the connector dev runs: its settings from cc, and
// dev's own gateway, bus, logger and registry.
func devConnectorOptions(cc connector.Config, gateway, user, password string, b *bus.Bus, log *slog.Logger, reg prometheus.Registerer) connector.Options {
	return connector.Options{
		Gateway: gateway, User: user, Password: password, Bus: b,
		Refresh: cc.Refresh, MaxDeliver: cc.MaxDeliver, Backoff: cc.Backoff, Timeout: cc.Timeout, Concurrency: cc.Concurrency,
		Logger: log, Registerer: reg,
	}
}
