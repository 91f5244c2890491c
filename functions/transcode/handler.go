// Package transcode is the transcode function: one invocation runs one
// rendition's job of one video — under TRANSCODE_FANOUT=grouped a job may
// encode several renditions from one decode (shared/media/encode does the work). The connector
// POSTs a ladder.Job from pulse.jobs.transcode; the answer tells it what to
// do with the message: 200 ack, 5xx redeliver (dead-letter after the last
// try, on which the rendition is marked failed), 400/422 dead-letter now.
//
// POST /dead-letters (the connector's schedule, every minute) settles the
// jobs dead-lettered without an outcome — their worker killed on every
// delivery — by marking what they claimed failed (worker-lost).
package transcode

import (
	"context"
	"errors"
	"net/http"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Name is the function's name in stack.yml.
const Name = "transcode"

// DeadLetterSubject is where the connector dead-letters this function's
// jobs (its DeadLetterPrefix and the function's name).
const DeadLetterSubject = topology.SubjectDLQ + "." + Name

// Function is the transcode function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	cfg := d.Config()
	tc, err := encode.LoadConfig(d.Getenv)
	if err != nil {
		return nil, err
	}
	if cfg.S3Endpoint == "" || cfg.NATSURL == "" {
		return nil, errors.New("transcode needs S3_ENDPOINT and NATS_URL")
	}
	m, err := encode.NewMetrics(d.Registerer())
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
	wk := &encode.Worker{
		Store: st, Meta: meta.NewStore(st, cfg.MediaBucket).Retain(cfg.MediaRetentionDays).OnStatus(func(ctx context.Context, v *meta.Video) { _ = livestatus.Publish(ctx, b, v) }),
		Audit: event.NewPublisher(b, Name), Bucket: cfg.MediaBucket, RetentionDays: cfg.MediaRetentionDays,
		Config: tc, Log: d.Logger(), Metrics: m,
	}
	return &encode.Handler{Worker: wk, Bus: b, DeadLetter: DeadLetterSubject, Name: Name, Log: d.Logger()}, nil
})
