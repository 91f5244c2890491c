package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/connector"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// runConnector invokes functions for NATS messages by their topic
// annotations until ctx is done. Shared settings (NATS_URL, LOG_LEVEL, ...)
// come from flags and the environment like every command; the connector's
// own (GATEWAY_*, SECRETS_DIR, CONNECTOR_*) from the environment.
func runConnector(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("connector", args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "\nConnector settings (environment only):\n")
		connector.SettingsUsage(stdout)
		return nil
	} else if err != nil {
		return err
	}
	if cfg.LocalNATS() {
		return fmt.Errorf("%w: connector needs NATS_URL (nats://host:port of the server holding the PULSE_* streams)", errUsage)
	}
	cc, err := connector.LoadConfig(os.Getenv)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	log := logging.New(stderr, cfg.LogLevel, "connector")
	defer tracing.Init(ctx, "pulsevault-connector", log)()

	b, err := bus.Connect(cfg.NATSURL, "pulsevault-connector")
	if err != nil {
		return err
	}
	defer b.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := connector.New(connector.Options{
		Gateway:     cc.Gateway,
		User:        cc.User,
		Password:    cc.Password,
		Bus:         b,
		Refresh:     cc.Refresh,
		MaxDeliver:  cc.MaxDeliver,
		Backoff:     cc.Backoff,
		Timeout:     cc.Timeout,
		Concurrency: cc.Concurrency,
		Logger:      log,
		Registerer:  reg,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cc.MetricsAddr)
	if err != nil {
		return fmt.Errorf("connector: metrics listener on %s (CONNECTOR_METRICS_ADDR): %w", cc.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Healthy means connected to NATS: a gateway outage is reported in
		// the body but restarting the connector would not fix it.
		st := c.Status()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !b.Conn().IsConnected() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(struct {
			NATSConnected bool `json:"nats_connected"`
			connector.Status
		}{b.Conn().IsConnected(), st})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.Info("connector started", "gateway", cc.Gateway, "metrics", "http://"+ln.Addr().String()+"/metrics",
		"refresh", cc.Refresh.String(), "max_deliver", cc.MaxDeliver, "timeout", cc.Timeout.String())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(runCtx) }()
	select {
	case err = <-runErr:
	case err = <-srvErr:
		err = fmt.Errorf("connector: metrics server: %w", err)
		cancel()
		<-runErr
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	log.Info("connector stopped")
	return err
}
