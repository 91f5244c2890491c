// Package logging builds the slog loggers of every PulseVault process. Its
// handler redacts attributes that could carry PHI or secrets, so a careless
// log call cannot leak a file name, a patient detail or a token.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/mieweb/pulsevault/shared/platform/tracing"
)

// Redacted replaces the value of a sensitive attribute.
const Redacted = "[REDACTED]"

// sensitive lists substrings of attribute keys whose values are never logged.
// Matching is on lower-cased keys so "FileName", "filename" and
// "upload.filename" are all caught.
var sensitive = []string{
	"filename", "file_name", "name", "patient", "email", "phone", "dob", "birth",
	"metadata", "title", "description", "comment", "note",
	"token", "authorization", "password", "secret", "cookie", "signature", "jwt",
}

// keyAllowed holds keys that contain a sensitive word but are known safe.
var keyAllowed = map[string]bool{
	"function_name": true, "service_name": true, "bucket_name": true, "stream_name": true, "hostname": true,
}

// Sensitive reports whether an attribute key is redacted.
func Sensitive(key string) bool {
	k := strings.ToLower(key)
	if keyAllowed[k] {
		return false
	}
	for _, s := range sensitive {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// ReplaceAttr redacts sensitive attributes; use it in any slog.HandlerOptions.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.MessageKey || a.Key == slog.LevelKey || a.Key == slog.TimeKey || a.Key == slog.SourceKey {
		return a
	}
	if Sensitive(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	return a
}

// ParseLevel maps debug/info/warn/error to a slog.Level (info otherwise).
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// New returns a JSON logger writing to w at the given level, with redaction,
// tagged with the component name (e.g. "dev", "fn/upload"). A record logged
// with a context (InfoContext, ...) carries that context's request_id and
// trace_id.
func New(w io.Writer, level, component string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: ParseLevel(level), ReplaceAttr: ReplaceAttr})
	return slog.New(contextHandler{Handler: h}).With("component", component)
}

// Keys of the request attributes.
const (
	KeyRequestID = "request_id"
	KeyTraceID   = "trace_id"
)

// With returns log tagged with ctx's request id and trace id, for code that
// logs without passing a context. Its records are not tagged a second time
// when they are logged with a context.
func With(ctx context.Context, log *slog.Logger) *slog.Logger {
	attrs := requestAttrs(ctx)
	if len(attrs) == 0 {
		return log
	}
	if h, ok := log.Handler().(contextHandler); ok {
		return slog.New(contextHandler{Handler: h.Handler.WithAttrs(attrs), tagged: true})
	}
	return slog.New(log.Handler().WithAttrs(attrs))
}

func requestAttrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	var out []slog.Attr
	if id := tracing.RequestID(ctx); id != "" {
		out = append(out, slog.String(KeyRequestID, id))
	}
	if id := tracing.TraceID(ctx); id != "" {
		out = append(out, slog.String(KeyTraceID, id))
	}
	return out
}

// contextHandler adds the request attributes of a record's context, unless
// the logger was already tagged by With.
type contextHandler struct {
	slog.Handler
	tagged bool
}

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.tagged {
		r.AddAttrs(requestAttrs(ctx)...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as), h.tagged}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name), h.tagged}
}
