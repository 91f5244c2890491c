package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/provider"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// runProvider serves the OpenFaaS gateway API on 127.0.0.1:GATEWAY_PORT and
// runs the functions deployed to it as child processes. It needs an
// existing NATS (NATS_URL) for asynchronous invocations.
func runProvider(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("provider", args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if cfg.LocalNATS() {
		return fmt.Errorf("%w: provider needs NATS_URL (an existing NATS server with JetStream; `pulsevault dev` starts one)", errUsage)
	}
	log := logging.New(stderr, cfg.LogLevel, "provider")
	defer tracing.Init(ctx, "pulsevault-provider", log)()
	b, err := bus.Connect(cfg.NATSURL, "pulsevault-provider")
	if err != nil {
		return err
	}
	defer b.Close()
	gw, err := startGateway(cfg, b, log, nil)
	if err != nil {
		return err
	}
	defer gw.stop()
	fmt.Fprintf(stdout, `PulseVault provider is up
  gateway       %s
  user          %s
  password      in %s
  login         faas-cli login -g %s -u %s --password-stdin < %s
  functions     %s
Ready. Press Ctrl-C to stop.
`, gw.url, gw.p.User(), gw.p.PasswordFile(), gw.url, gw.p.User(), gw.p.PasswordFile(), strings.Join(functionNames(), ", "))
	select {
	case err := <-gw.errc:
		return fmt.Errorf("provider: serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "Stopping...")
	return nil
}

// gateway is a provider served on 127.0.0.1.
type gateway struct {
	p    *provider.Provider
	srv  *http.Server
	url  string
	errc chan error
}

// startGateway creates the provider and serves it on 127.0.0.1:cfg.GatewayPort.
// extra, if not nil, serves the paths it handles ahead of the gateway API.
func startGateway(cfg config.Config, b *bus.Bus, log *slog.Logger, extra *http.ServeMux) (*gateway, error) {
	p, err := provider.New(provider.Options{
		Functions:    functionNames(),
		DataDir:      cfg.DataDir,
		CreateAuth:   true,
		Bus:          b,
		NATSReplicas: cfg.NATSReplicas,
		Logger:       log,
		Env:          cfg.Env(),
		LogDir:       filepath.Join(cfg.DataDir, "logs", "functions"),
		Version:      version,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.GatewayPort)))
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("gateway: listen on 127.0.0.1:%d: %w (set GATEWAY_PORT to another port, or 0)", cfg.GatewayPort, err)
	}
	var h http.Handler = p.Handler()
	if extra != nil {
		extra.Handle("/", h)
		h = extra
	}
	gw := &gateway{
		p: p,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    provider.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		url:  "http://" + ln.Addr().String(),
		errc: make(chan error, 1),
	}
	go func() { gw.errc <- gw.srv.Serve(ln) }()
	return gw, nil
}

// stop drains the HTTP server, then stops every function replica.
func (gw *gateway) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = gw.srv.Shutdown(ctx)
	gw.p.Close()
}
