package tests

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// bootstrapped connects a store and a bus (named client) to cfg's services
// and bootstraps them (buckets, streams, canary) as the system does at
// start; the bus closes with the test.
func bootstrapped(tb testing.TB, cfg config.Config, client string) (*storage.Store, *bus.Bus) {
	tier.Integration(tb, "the local stack")
	tb.Helper()
	st, err := storage.FromConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := bus.Connect(cfg.NATSURL, client)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	if _, err := bootstrap.Run(context.Background(), cfg, st, b, slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatal(err)
	}
	return st, b
}
