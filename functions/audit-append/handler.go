// Package auditappend is the audit-append function: it appends audit events
// to the hash-chained, Object-Locked audit log (shared/audit/chain).
//
// The function pulls its events from JetStream itself rather than being
// invoked once per event (README.md says why). Its HTTP side reports the
// writer's status and can force a checkpoint.
package auditappend

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/chain"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Name is the function's name in stack.yml.
const Name = "audit-append"

var (
	mu      sync.Mutex
	writer  *chain.Chain
	lastTry time.Time
	lastErr error
)

// retryStart spaces out start attempts after a failure (missing secret,
// store down), which requests would otherwise repeat in a tight loop.
const retryStart = 2 * time.Second

// Start builds the writer from the process's settings and secret and runs
// it until ctx is done. The function's process calls it at start; Handle
// calls it on the first request if nothing did.
func Start(ctx context.Context) error {
	mu.Lock()
	defer mu.Unlock()
	return startLocked(ctx)
}

func startLocked(ctx context.Context) error {
	if writer != nil {
		return nil
	}
	if time.Since(lastTry) < retryStart && lastErr != nil {
		return lastErr
	}
	lastTry = time.Now()
	c, err := build(ctx)
	lastErr = err
	if err != nil {
		slog.Default().Error("audit-append cannot start; will retry", "err", err)
		return err
	}
	writer = c
	go func() { _ = c.Run(ctx) }()
	return nil
}

func build(ctx context.Context) (*chain.Chain, error) {
	cfg, err := config.FromEnv(Name)
	if err != nil {
		return nil, err
	}
	log := logging.New(os.Stderr, cfg.LogLevel, "fn/"+Name)
	slog.SetDefault(log) // shared/bus logs through the default logger
	ac, err := chain.LoadConfig(os.Getenv)
	if err != nil {
		return nil, err
	}
	if cfg.LocalNATS() || cfg.LocalS3() {
		return nil, errors.New("audit-append needs NATS_URL and S3_ENDPOINT")
	}
	seed, err := secrets.Read(record.SecretName)
	if err != nil {
		return nil, err
	}
	signer, err := record.ParseSeed(seed)
	if err != nil {
		return nil, err
	}
	st, err := storage.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	b, err := bus.ForFunction(cfg.NATSURL, Name)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := chain.New(sctx, chain.Options{
		Bus: b, Store: st, Bucket: cfg.AuditBucket, RetentionDays: cfg.AuditRetentionDays,
		Signer: signer, Config: ac, Logger: log, Replicas: cfg.NATSReplicas,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	return c, nil
}

type status struct {
	chain.Status
	PID int `json:"pid"`
}

// Handle answers GET / with the writer's status and POST /checkpoint by
// committing a signed checkpoint now (when records wait for one).
func Handle(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	err := startLocked(context.Background())
	c := writer
	mu.Unlock()
	if err != nil {
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "audit writer not running", "detail": err.Error()})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		fnrun.WriteJSON(w, http.StatusOK, status{Status: c.Status(), PID: os.Getpid()})
	case r.Method == http.MethodPost && r.URL.Path == "/checkpoint":
		res, err := c.Append(r.Context(), nil, true)
		if err != nil {
			fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		fnrun.WriteJSON(w, http.StatusOK, map[string]any{"checkpoint": res.Checkpoint, "status": c.Status()})
	default:
		w.Header().Set("Allow", "GET /, POST /checkpoint")
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": "audit-append consumes " + topology.SubjectAudit + ".> from JetStream itself; use GET / for status or POST /checkpoint",
		})
	}
}
