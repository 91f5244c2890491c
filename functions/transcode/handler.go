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
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
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

// maxBody bounds a job message; a real one is under 100 bytes.
const maxBody = 64 << 10

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
		Store: st, Meta: meta.NewStore(st, cfg.MediaBucket).OnStatus(func(ctx context.Context, v *meta.Video) { _ = livestatus.Publish(ctx, b, v) }),
		Audit: event.NewPublisher(b, Name), Bucket: cfg.MediaBucket, RetentionDays: cfg.MediaRetentionDays,
		Config: tc, Log: d.Logger(), Metrics: m,
	}
	return &handler{wk: wk, bus: b, log: d.Logger()}, nil
})

type handler struct {
	wk  *encode.Worker
	bus *bus.Bus
	log *slog.Logger
}

// ServeHTTP runs the job in the request body, or drains the dead letters
// on /dead-letters.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wk, b, log := h.wk, h.bus, h.log
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST a media.Job to / or POST /dead-letters", "function": Name})
		return
	}
	if r.URL.Path != "/" && r.URL.Path != "" && r.URL.Path != "/dead-letters" {
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not found: POST / or /dead-letters", "function": Name})
		return
	}
	if r.URL.Path == "/dead-letters" {
		rep, err := wk.DrainDeadLetters(r.Context(), b, DeadLetterSubject)
		switch {
		case err != nil:
			log.Error("transcode: dead letters not drained", "err", err)
			fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "dead letters not drained; retry", "function": Name})
		case rep.Errors > 0:
			fnrun.WriteJSON(w, http.StatusInternalServerError, rep) // counted by the connector's schedule metric
		default:
			fnrun.WriteJSON(w, http.StatusOK, rep)
		}
		return
	}
	var job ladder.Job
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody || json.Unmarshal(body, &job) != nil || job.Video == "" || job.Rendition == "" {
		fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be a JSON job {"video": "<id>", "rendition": "<name>"} under 64 KiB`, "function": Name})
		return
	}
	delivered := 1
	if n, err := strconv.Atoi(r.Header.Get(topology.HeaderDelivered)); err == nil && n > 0 {
		delivered = n
	}
	res := wk.Do(r.Context(), job, delivered)
	fnrun.WriteJSON(w, res.Status, res)
}
