// Package bootstrap prepares a store and a NATS server for PulseVault: the
// three buckets, bucket notifications, the JetStream streams, and the WORM
// canary that proves the store really refuses to let a locked object go.
// Running it again changes nothing.
package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/notification"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// canaryRetention is kept short: the canary exists only to be refused.
const canaryRetention = 24 * time.Hour

// ErrNotWORM means the store let a locked object be deleted or its retention
// shortened: it cannot hold clinical media.
var ErrNotWORM = errors.New("store does not enforce Object Lock")

// minioNATSARN is the notification target MinIO registers from its
// MINIO_NOTIFY_NATS_* environment.
const minioNATSARN = "arn:minio:sqs::PRIMARY:nats"

// Report says what a run did; on a second run every Created list is empty.
type Report struct {
	CreatedBuckets []string
	CreatedStreams []string
	Notifications  string // "set", "unchanged" or "configured by the deployment"
	Canary         string // "passed" or the reason it did not
}

// Streams are the JetStream streams PulseVault needs, each with
// NATS_REPLICAS copies (an existing stream is converged to that count).
func Streams(cfg config.Config) []bus.StreamConfig {
	week := 7 * 24 * time.Hour
	r := cfg.NATSReplicas
	return []bus.StreamConfig{
		// Bucket events: plain NATS publishes from the S3 server are kept here
		// so a consumer outage loses nothing.
		{Name: topology.StreamEvents, Subjects: []string{cfg.EventSubject}, MaxAge: week, Replicas: r},
		{Name: topology.StreamJobs, Subjects: []string{topology.SubjectJobs + ".>"}, MaxAge: week, Replicas: r},
		{Name: topology.StreamAudit, Subjects: []string{topology.SubjectAudit + ".>"}, MaxAge: 30 * 24 * time.Hour, Replicas: r},
		{Name: topology.StreamDLQ, Subjects: []string{topology.SubjectDLQ + ".>"}, MaxAge: 30 * 24 * time.Hour, Replicas: r},
	}
}

// Run bootstraps the store and the bus. With cfg.LockCheck "warn", a failed
// canary is logged loudly instead of returned.
func Run(ctx context.Context, cfg config.Config, st *storage.Store, b *bus.Bus, log *slog.Logger) (Report, error) {
	var r Report
	for _, bk := range []struct {
		name string
		lock bool
	}{{cfg.UploadsBucket, false}, {cfg.MediaBucket, true}, {cfg.AuditBucket, true}} {
		created, err := st.EnsureBucket(ctx, bk.name, bk.lock)
		if err != nil {
			return r, fmt.Errorf("bucket %s: %w", bk.name, err)
		}
		if created {
			r.CreatedBuckets = append(r.CreatedBuckets, bk.name)
		}
	}
	for _, sc := range Streams(cfg) {
		created, err := b.EnsureStream(ctx, sc)
		if err != nil {
			return r, fmt.Errorf("stream %s: %w", sc.Name, err)
		}
		if created {
			r.CreatedStreams = append(r.CreatedStreams, sc.Name)
		}
	}
	n, err := ensureNotifications(ctx, st.Client(), cfg.UploadsBucket)
	if err != nil {
		return r, fmt.Errorf("notifications on %s: %w", cfg.UploadsBucket, err)
	}
	r.Notifications = n

	r.Canary = "passed"
	for _, bucket := range []string{cfg.MediaBucket, cfg.AuditBucket} {
		if err := Canary(ctx, st, bucket); err != nil {
			r.Canary = err.Error()
			if cfg.LockCheck == "strict" {
				return r, err
			}
			log.Error("WORM CANARY FAILED: this store does not protect clinical media; do not use it beyond development", "bucket", bucket, "err", err)
		}
	}
	log.Info("bootstrap done", "created_buckets", r.CreatedBuckets, "created_streams", r.CreatedStreams,
		"notifications", r.Notifications, "canary", r.Canary)
	return r, nil
}

// ensureNotifications asks the store to publish object-created events of the
// uploads bucket to NATS. MinIO does it through its NATS target; stores that
// answer 501 (versitygw) are configured by their deployment instead.
func ensureNotifications(ctx context.Context, c *minio.Client, bucket string) (string, error) {
	arn, err := notification.NewArnFromString(minioNATSARN)
	if err != nil {
		return "", err
	}
	q := notification.NewConfig(arn)
	q.AddEvents(notification.ObjectCreatedAll)
	cfg, err := c.GetBucketNotification(ctx, bucket)
	if notImplemented(err) {
		return "configured by the deployment", nil
	}
	if err != nil {
		return "", err
	}
	for _, have := range cfg.QueueConfigs {
		if have.Queue == minioNATSARN {
			return "unchanged", nil
		}
	}
	cfg.AddQueue(q)
	if err := c.SetBucketNotification(ctx, bucket, cfg); err != nil {
		if notImplemented(err) {
			return "configured by the deployment", nil
		}
		return "", err
	}
	return "set", nil
}

func notImplemented(err error) bool {
	if err == nil {
		return false
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	return resp.StatusCode == 501 || resp.Code == "NotImplemented"
}

// Canary proves that bucket keeps a COMPLIANCE-locked object: deleting its
// version and shortening its retention must both be refused. It reuses a
// canary still under retention, so repeated runs write nothing new.
func Canary(ctx context.Context, st *storage.Store, bucket string) error {
	info, err := st.Stat(ctx, bucket, topology.CanaryKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("canary in %s: %w", bucket, err)
	}
	if err != nil || info.Retention == nil || time.Until(info.Retention.Until) < time.Minute {
		ret := storage.Retention{Mode: minio.Compliance, Until: time.Now().Add(canaryRetention).UTC().Truncate(time.Second)}
		info, err = st.PutBytes(ctx, bucket, topology.CanaryKey, []byte("pulsevault worm canary\n"),
			storage.PutOptions{ContentType: "text/plain", Retention: &ret})
		if err != nil {
			var resp minio.ErrorResponse
			if errors.As(err, &resp) && resp.Code != "" {
				// The store answered and said no to a locked write.
				return fmt.Errorf("%w: %s refused a COMPLIANCE-locked write: %v", ErrNotWORM, bucket, err)
			}
			return fmt.Errorf("canary in %s: put: %w", bucket, err)
		}
		if info, err = st.Stat(ctx, bucket, topology.CanaryKey); err != nil {
			return fmt.Errorf("canary in %s: %w", bucket, err)
		}
	}
	if info.Retention == nil || info.Retention.Mode != minio.Compliance || !info.Retention.Until.After(time.Now()) {
		return fmt.Errorf("%w: %s does not report COMPLIANCE retention on a locked object", ErrNotWORM, bucket)
	}
	if info.VersionID == "" {
		return fmt.Errorf("%w: %s has no object versions (versioning off?)", ErrNotWORM, bucket)
	}
	if err := st.Remove(ctx, bucket, topology.CanaryKey, info.VersionID); err == nil {
		return fmt.Errorf("%w: %s let a locked version be deleted", ErrNotWORM, bucket)
	}
	shorter := storage.Retention{Mode: minio.Compliance, Until: time.Now().Add(time.Minute).UTC().Truncate(time.Second)}
	if err := st.PutRetention(ctx, bucket, topology.CanaryKey, info.VersionID, shorter); err == nil {
		return fmt.Errorf("%w: %s let a COMPLIANCE retention be shortened", ErrNotWORM, bucket)
	}
	after, err := st.Stat(ctx, bucket, topology.CanaryKey)
	if err != nil || after.VersionID != info.VersionID {
		return fmt.Errorf("%w: %s lost the locked canary version (%v)", ErrNotWORM, bucket, err)
	}
	rc, _, err := st.Get(ctx, bucket, topology.CanaryKey, 0, -1)
	if err != nil {
		return fmt.Errorf("%w: %s cannot read the canary back: %v", ErrNotWORM, bucket, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(rc)
	if buf.Len() == 0 {
		return fmt.Errorf("%w: %s returned an empty canary", ErrNotWORM, bucket)
	}
	return nil
}
