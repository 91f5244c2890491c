// Package events is the events function: server-sent events with the live
// status of the caller's videos (processing → ready → complete / failed).
//
// GET / with "Authorization: Bearer <JWT>" and "Accept: text/event-stream"
// (the Accept header is what makes OpenFaaS's proxy stream instead of
// buffering; EventSource sends it, but it cannot send Authorization, so
// Vitals reads the stream with fetch). Each change is
//
//	event: status
//	data: {"video":"<id>","status":"ready"}
//
// fed from core NATS (shared/playback/livestatus). A comment line every 15 s keeps
// proxies from timing the stream out; the stream ends after EVENTS_MAX_STREAM
// and the client reconnects (retry: 2000), re-reading the list to catch up.
// The stream is shared/playback/livestatus's Stream; this is its adapter.
package events

import (
	"net/http"

	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/playback/grant"
	"github.com/mieweb/pulsevault/shared/playback/livestatus"
)

// Name is the function's name in stack.yml.
const Name = "events"

// Function is the events function over its dependencies.
var Function = fnrun.Function(Name, func(d *fnrun.Deps) (http.Handler, error) {
	pol, err := grant.LoadSettings(d.Getenv)
	if err != nil {
		return nil, err
	}
	maxStream, err := livestatus.LoadMaxStream(d.Getenv)
	if err != nil {
		return nil, err
	}
	ver, err := d.Verifier()
	if err != nil {
		return nil, err
	}
	b, err := d.Bus()
	if err != nil {
		return nil, err
	}
	return &livestatus.Stream{NATS: b.Conn(), Verifier: ver, Policy: pol, MaxStream: maxStream, Log: d.Logger()}, nil
})
