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
	"net/http"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/chain"
	"github.com/mieweb/pulsevault/shared/audit/record"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
)

// Name is the function's name in stack.yml.
const Name = "audit-append"

// Function is the audit-append function over its dependencies. It is
// built at process start (fnrun.Eager) so the writer runs before any
// request; a failed start (missing secret, store down) is retried on the
// next request. The writer runs under the process's context: SIGTERM
// stops it, and the process waits for it.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	cfg := d.Config()
	ac, err := chain.LoadConfig(d.Getenv)
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
	st, err := d.Store()
	if err != nil {
		return nil, err
	}
	b, err := d.Bus()
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(d.Context(), 30*time.Second)
	defer cancel()
	c, err := chain.New(sctx, chain.Options{
		Bus: b, Store: st, Bucket: cfg.AuditBucket, RetentionDays: cfg.AuditRetentionDays,
		Signer: signer, Config: ac, Logger: d.Logger(), Replicas: cfg.NATSReplicas, Registerer: d.Registerer(),
	})
	if err != nil {
		return nil, err
	}
	d.Go(func(ctx context.Context) { _ = c.Run(ctx) })
	return c, nil
}, fnrun.Eager())
