// Package logging builds the slog loggers of every PulseVault process. Its
// handler redacts attributes that could carry PHI or secrets, so a careless
// log call cannot leak a file name, a patient detail or a token.
package logging

import (
	"io"
	"log/slog"
	"strings"
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
// tagged with the component name (e.g. "dev", "fn/upload").
func New(w io.Writer, level, component string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: ParseLevel(level), ReplaceAttr: ReplaceAttr})
	return slog.New(h).With("component", component)
}
