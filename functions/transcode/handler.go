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
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/media/encode"
	"github.com/mieweb/pulsevault/shared/media/ladder"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/platform/config"
	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/logging"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
	"github.com/mieweb/pulsevault/shared/storage"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Name is the function's name in stack.yml.
const Name = "transcode"

// DeadLetterSubject is where the connector dead-letters this function's
// jobs (its DeadLetterPrefix and the function's name).
const DeadLetterSubject = topology.SubjectDLQ + "." + Name

// maxBody bounds a job message; a real one is under 100 bytes.
const maxBody = 64 << 10

var state struct {
	mu     sync.Mutex
	worker *encode.Worker
	bus    *bus.Bus
	log    *slog.Logger
}

// worker builds the worker on first use and keeps it once it works, so a
// store or NATS that is down at start only fails the requests meanwhile.
func worker() (*encode.Worker, *bus.Bus, *slog.Logger, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.log == nil {
		state.log = logging.New(os.Stderr, os.Getenv("LOG_LEVEL"), "fn/"+Name)
		slog.SetDefault(state.log) // shared/bus logs through the default logger
	}
	if state.worker != nil {
		return state.worker, state.bus, state.log, nil
	}
	cfg, err := config.FromEnv(Name)
	if err != nil {
		return nil, nil, state.log, err
	}
	tc, err := encode.LoadConfig(os.Getenv)
	if err != nil {
		return nil, nil, state.log, err
	}
	if cfg.S3Endpoint == "" || cfg.NATSURL == "" {
		return nil, nil, state.log, fmt.Errorf("transcode needs S3_ENDPOINT and NATS_URL")
	}
	st, err := storage.FromConfig(cfg)
	if err != nil {
		return nil, nil, state.log, err
	}
	b, err := bus.ForFunction(cfg.NATSURL, Name)
	if err != nil {
		return nil, nil, state.log, err
	}
	state.worker = &encode.Worker{
		Store: st, Meta: meta.NewStore(st, cfg.MediaBucket).OnStatus(func(ctx context.Context, v *meta.Video) { _ = livestatus.Publish(ctx, b, v) }), Audit: event.NewPublisher(b, Name),
		Bucket: cfg.MediaBucket, RetentionDays: cfg.MediaRetentionDays, Config: tc, Log: state.log,
	}
	state.bus = b
	return state.worker, state.bus, state.log, nil
}

// Handle runs the job in the request body, or drains the dead letters on
// /dead-letters.
func Handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fnrun.WriteJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST a media.Job to / or POST /dead-letters", "function": Name})
		return
	}
	if r.URL.Path != "/" && r.URL.Path != "" && r.URL.Path != "/dead-letters" {
		fnrun.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not found: POST / or /dead-letters", "function": Name})
		return
	}
	wk, b, log, err := worker()
	if err != nil {
		log.Error("transcode: not configured", "err", err)
		fnrun.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "function not configured", "function": Name})
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
