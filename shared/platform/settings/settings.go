// Package settings reads a function's own environment variables. Each
// package declares its variables once, as a []Setting, so that defaults,
// -h output and validation cannot drift apart; a bad value stops the
// process with one line naming the variable and what it accepts.
package settings

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable: its name, default and meaning.
type Setting struct {
	Env, Default, Usage string
}

// Usage writes the settings with their defaults, one a line, for -h.
func Usage(w io.Writer, list []Setting) {
	for _, s := range list {
		fmt.Fprintf(w, "  %-24s %s (default %q)\n", s.Env, s.Usage, s.Default)
	}
}

// Reader reads declared settings through getenv. It keeps the first invalid
// value as its error, so a loader can read every field in a row and check
// Err once: the error is the one an early return would have given.
type Reader struct {
	getenv func(string) string
	list   []Setting
	err    error
}

// New returns a Reader of list through getenv.
func New(getenv func(string) string, list []Setting) *Reader {
	return &Reader{getenv: getenv, list: list}
}

// Err is the first failure recorded, or nil.
func (r *Reader) Err() error { return r.err }

// String is name's value with surrounding space trimmed, or its declared
// default when that leaves nothing.
func (r *Reader) String(name string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return r.def(name)
}

// Fail records `invalid NAME "value": why` unless a failure came first.
func (r *Reader) Fail(name, why string) {
	if r.err == nil {
		r.err = fmt.Errorf("invalid %s %q: %s", name, r.String(name), why)
	}
}

// Duration is name's value as a duration from lo to hi; otherwise it
// records a failure and returns 0.
func (r *Reader) Duration(name string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(r.String(name))
	if err != nil || d < lo || d > hi {
		why := "must be a duration from " + short(lo) + " to " + short(hi)
		// The default shows the expected form.
		if ex := r.def(name); ex != "" {
			why += ", such as " + ex
		}
		r.Fail(name, why)
		return 0
	}
	return d
}

// Int is name's value as a whole number from lo to hi; otherwise it
// records a failure and returns 0.
func (r *Reader) Int(name string, lo, hi int) int {
	n, err := strconv.Atoi(r.String(name))
	if err != nil || n < lo || n > hi {
		r.Fail(name, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
		return 0
	}
	return n
}

// Bytes is name's value as a whole number of bytes from lo to hi, which
// may exceed int on 32-bit platforms; otherwise it records a failure and
// returns 0.
func (r *Reader) Bytes(name string, lo, hi int64) int64 {
	n, err := strconv.ParseInt(r.String(name), 10, 64)
	if err != nil || n < lo || n > hi {
		r.Fail(name, fmt.Sprintf("must be a whole number of bytes from %d to %d", lo, hi))
		return 0
	}
	return n
}

func (r *Reader) def(name string) string {
	for _, s := range r.list {
		if s.Env == name {
			return s.Default
		}
	}
	return ""
}

// short formats d without the zero units time.Duration.String appends, so
// a range reads "1m to 24h" rather than "1m0s to 24h0m0s".
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
