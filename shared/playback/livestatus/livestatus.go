// Package livestatus carries live status changes of videos over core NATS, so
// that the events function can push them to viewers without polling.
//
// Whoever writes a new Status into meta.json (upload-finalize, transcode)
// calls Publish with the video it wrote. Delivery is best effort and live
// only (no stream keeps them): meta.json stays the source of truth, and a
// client that reconnects re-reads the list.
package livestatus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Change is one status change. It holds ids and codes only, no PHI.
type Change struct {
	Video    string      `json:"video"`
	Status   meta.Status `json:"status"`
	Uploader string      `json:"uploader"` // JWT subject; used to pick who may see it, never sent to browsers
	Time     time.Time   `json:"time"`
}

// Publish announces v's current status. Call it after the meta.json write
// that changed it succeeded. It flushes, so a returned nil means the server
// has the message.
func Publish(ctx context.Context, b *bus.Bus, v *meta.Video) error {
	return PublishConn(ctx, b.Conn(), v)
}

// PublishConn is Publish over a plain connection.
func PublishConn(ctx context.Context, nc *nats.Conn, v *meta.Video) error {
	data, err := json.Marshal(Change{Video: v.ID, Status: v.Status, Uploader: v.Uploader, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := nc.Publish(topology.StatusSubject(v.ID), data); err != nil {
		return fmt.Errorf("livestatus: publish: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("livestatus: flush: %w", err)
	}
	return nil
}

// Subscribe calls fn for every change until the returned subscription is
// unsubscribed. Malformed messages are skipped.
func Subscribe(nc *nats.Conn, fn func(Change)) (*nats.Subscription, error) {
	return nc.Subscribe(topology.SubjectStatusPrefix+".*", func(m *nats.Msg) {
		var c Change
		if json.Unmarshal(m.Data, &c) == nil && c.Video != "" && c.Status != "" {
			fn(c)
		}
	})
}
