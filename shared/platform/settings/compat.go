package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reader reads declared settings through getenv, validating at each call.
// It keeps the first invalid value as its error.
//
// Deprecated: give each Var a Check and read the table with Load or
// FromEnv. Reader remains so that code written against it keeps building.
type Reader struct {
	getenv func(string) string
	list   Table
	err    error
}

// New returns a Reader of list through getenv.
//
// Deprecated: use FromEnv.
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
	v, _ := r.list.Lookup(name)
	return v.Default
}

// Fail records `invalid NAME "value": why` unless a failure came first.
func (r *Reader) Fail(name, why string) {
	if r.err == nil {
		r.err = fmt.Errorf("invalid %s %q: %s", name, r.String(name), why)
	}
}

func (r *Reader) check(name string, c Check) bool {
	if err := c(r.String(name)); err != nil {
		if r.err == nil {
			v, _ := r.list.Lookup(name)
			v.Env, v.Flag = name, ""
			r.err = Invalid(v, r.String(name), err)
		}
		return false
	}
	return true
}

// Duration is name's value as a duration from lo to hi; otherwise it
// records a failure and returns 0.
func (r *Reader) Duration(name string, lo, hi time.Duration) time.Duration {
	if !r.check(name, Duration(lo, hi)) {
		return 0
	}
	d, _ := time.ParseDuration(r.String(name))
	return d
}

// Int is name's value as a whole number from lo to hi; otherwise it
// records a failure and returns 0.
func (r *Reader) Int(name string, lo, hi int) int {
	if !r.check(name, IntRange(lo, hi)) {
		return 0
	}
	n, _ := strconv.Atoi(r.String(name))
	return n
}

// Bytes is name's value as a whole number of bytes from lo to hi;
// otherwise it records a failure and returns 0.
func (r *Reader) Bytes(name string, lo, hi int64) int64 {
	if !r.check(name, Size(lo, hi)) {
		return 0
	}
	n, _ := strconv.ParseInt(r.String(name), 10, 64)
	return n
}
