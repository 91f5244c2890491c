package bootstrap_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/faas/bootstrap"
	"github.com/mieweb/pulsevault/shared/ingest/s3event"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
	"github.com/mieweb/pulsevault/shared/topology"
)

type fixture struct {
	env *testenv.Env
	st  *storage.Store
	b   *bus.Bus
}

func setup(t *testing.T) fixture {
	t.Helper()
	env := testenv.Start(t)
	c := env.Config
	st, err := storage.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(c.NATSURL, "bootstrap-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return fixture{env, st, b}
}

func TestBootstrapTwiceIsANoOp(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	r1, err := bootstrap.Run(ctx, f.env.Config, f.st, f.b, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(r1.CreatedBuckets) != 3 || len(r1.CreatedStreams) != 4 || r1.Canary != "passed" {
		t.Fatalf("first run: %+v", r1)
	}
	if r1.Notifications != "configured by the deployment" {
		t.Fatalf("versitygw answers 501 to SetBucketNotification; got %q", r1.Notifications)
	}
	canary, err := f.st.Stat(ctx, f.env.Config.MediaBucket, topology.CanaryKey)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := bootstrap.Run(ctx, f.env.Config, f.st, f.b, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.CreatedBuckets) != 0 || len(r2.CreatedStreams) != 0 || r2.Canary != "passed" {
		t.Fatalf("second run changed something: %+v", r2)
	}
	again, err := f.st.Stat(ctx, f.env.Config.MediaBucket, topology.CanaryKey)
	if err != nil {
		t.Fatal(err)
	}
	if again.VersionID != canary.VersionID {
		t.Fatalf("second run wrote a new canary version: %s → %s", canary.VersionID, again.VersionID)
	}
}

// An object put in the uploads bucket reaches a JetStream consumer as a decoded event.
func TestUploadEventReachesJetStream(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, err := bootstrap.Run(ctx, f.env.Config, f.st, f.b, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	got := make(chan s3event.Object, 16)
	cons, err := f.b.Consume(ctx, bus.ConsumeOptions{Stream: "PULSE_EVENTS", Durable: "test-finalize"}, func(_ context.Context, m bus.Msg) error {
		objs, err := s3event.Objects(m.Data)
		if errors.Is(err, s3event.ErrTestEvent) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, o := range objs {
			got <- o
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Stop()

	key := "3f1c2a9e4b7d4e0f8a6b5c4d3e2f1a0b"
	start := time.Now()
	if _, err := f.st.PutBytes(ctx, f.env.Config.UploadsBucket, key, bytes.Repeat([]byte("x"), 1000), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case o := <-got:
			if o.Bucket == f.env.Config.UploadsBucket && o.Key == key && o.Created() {
				t.Logf("event after %s", time.Since(start).Round(time.Millisecond))
				return
			}
		case <-deadline:
			t.Fatal("no ObjectCreated event for the upload within 5s")
		}
	}
}

// After bootstrap, a COMPLIANCE-locked media object can be neither deleted nor have its retention shortened.
func TestLockedMediaIsRefusedDeleteAndShorten(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	c := f.env.Config
	if _, err := bootstrap.Run(ctx, c, f.st, f.b, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	key := "videos/6f0e2b8c-1d4a-4e7f-9b3c-2a5d8e1f0c7b/original.mp4"
	ret := storage.Compliance(c.MediaRetentionDays)
	info, err := f.st.PutBytes(ctx, c.MediaBucket, key, []byte("original bytes"), storage.PutOptions{ContentType: "video/mp4", Retention: &ret})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Remove(ctx, c.MediaBucket, key, info.VersionID); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("delete of a locked version: want ErrLocked, got %v", err)
	}
	shorter := storage.Retention{Mode: minio.Compliance, Until: time.Now().Add(time.Minute)}
	if err := f.st.PutRetention(ctx, c.MediaBucket, key, info.VersionID, shorter); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("shortening COMPLIANCE retention: want ErrLocked, got %v", err)
	}
	st, err := f.st.Stat(ctx, c.MediaBucket, key)
	if err != nil || st.VersionID != info.VersionID || st.Retention == nil || st.Retention.Until.Before(ret.Until.Add(-time.Second)) {
		t.Fatalf("locked object changed: %+v %v", st, err)
	}
}

// The canary fails on a bucket without Object Lock.
func TestCanaryFailsWithoutLock(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, err := f.st.EnsureBucket(ctx, "no-lock", false); err != nil {
		t.Fatal(err)
	}
	if err := bootstrap.Canary(ctx, f.st, "no-lock"); !errors.Is(err, bootstrap.ErrNotWORM) {
		t.Fatalf("want ErrNotWORM, got %v", err)
	}
}

// TestStreamsAreTheTopologys checks that bootstrap creates the streams
// shared/topology declares (all but the provider's own async queue), each
// on the subjects the topology says it holds.
func TestStreamsAreTheTopologys(t *testing.T) {
	cfg := config.Config{Bus: config.Bus{EventSubject: topology.DefaultEventSubject}}
	want := map[string]string{
		topology.StreamEvents: topology.DefaultEventSubject,
		topology.StreamJobs:   topology.SubjectJobs + ".>",
		topology.StreamAudit:  topology.SubjectAudit + ".>",
		topology.StreamDLQ:    topology.SubjectDLQ + ".>",
	}
	got := map[string]string{}
	for _, s := range bootstrap.Streams(cfg) {
		got[s.Name] = strings.Join(s.Subjects, ",")
	}
	if !maps.Equal(got, want) {
		t.Fatalf("streams %v, want %v", got, want)
	}
}
