package settings

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Check validates one value; its error says what the variable accepts,
// e.g. "must be a whole number from 1 to 5".
type Check func(v string) error

// Optional accepts the empty value and otherwise applies c.
func Optional(c Check) Check {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return c(v)
	}
}

// All applies every check in turn; the first failure wins.
func All(checks ...Check) Check {
	return func(v string) error {
		for _, c := range checks {
			if err := c(v); err != nil {
				return err
			}
		}
		return nil
	}
}

// NonEmpty refuses the empty value.
func NonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// MinLen accepts values of at least n characters.
func MinLen(n int) Check {
	return func(v string) error {
		if len(v) < n {
			return fmt.Errorf("must be at least %d characters", n)
		}
		return nil
	}
}

// IntRange accepts whole numbers from lo to hi.
func IntRange(lo, hi int) Check {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		return nil
	}
}

// Port accepts a TCP port, 0 (pick a free one) included.
var Port = IntRange(0, 65535)

// Size accepts a whole number of bytes from lo to hi, which may exceed int
// on 32-bit platforms.
func Size(lo, hi int64) Check {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number of bytes from %d to %d", lo, hi)
		}
		return nil
	}
}

// exampleError asks Load to add the variable's default to the message as
// an example of the expected form.
type exampleError struct{ msg string }

func (e exampleError) Error() string { return e.msg }

// Duration accepts a Go duration (1m30s) from lo to hi.
func Duration(lo, hi time.Duration) Check {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			return exampleError{"must be a duration from " + short(lo) + " to " + short(hi)}
		}
		return nil
	}
}

// DurationList accepts comma-separated durations, each from lo to hi.
func DurationList(lo, hi time.Duration) Check {
	return func(v string) error {
		for s := range strings.SplitSeq(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || d < lo || d > hi {
				return exampleError{"must be comma-separated durations (each " + short(lo) + "–" + short(hi) + ")"}
			}
		}
		return nil
	}
}

// OneOf accepts exactly one of allowed.
func OneOf(allowed ...string) Check {
	return func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
		}
		return nil
	}
}

// Bucket accepts S3 bucket names: 3–63 lowercase letters, digits, dots and
// hyphens, starting and ending with a letter or digit.
func Bucket(v string) error {
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	if len(v) < 3 || len(v) > 63 || strings.Trim(v, alnum+".-") != "" || strings.Trim(v[:1]+v[len(v)-1:], alnum) != "" {
		return errors.New("must be an S3 bucket name: 3–63 lowercase letters, digits, dots and hyphens")
	}
	return nil
}

// ServiceURL accepts scheme://host:port with one of schemes and an explicit
// port (what a NATS or S3 client dials).
func ServiceURL(schemes ...string) Check {
	return func(v string) error {
		u, err := url.Parse(v)
		if err != nil {
			return fmt.Errorf("not a URL: %v", err)
		}
		if !slices.Contains(schemes, u.Scheme) {
			return fmt.Errorf("scheme must be one of %s://", strings.Join(schemes, ":// "))
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" {
			return errors.New("must be scheme://host:port")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("port must be 1–65535")
		}
		return nil
	}
}

// HTTPURL accepts an absolute http(s) URL with a host, and no credentials
// or query (which would leak into logs and Location headers).
func HTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return errors.New("must be http(s)://host[:port][/path], without credentials or query")
	}
	return nil
}

// PathOrURL accepts an absolute URL path (/media) or an http(s) URL
// (https://host/media), without query, fragment or spaces: a prefix that
// links are built on.
func PathOrURL(v string) error {
	v = strings.TrimRight(v, "/")
	if !(strings.HasPrefix(v, "/") || strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "http://")) || strings.ContainsAny(v, "?# ") {
		return errors.New("must be a path such as /media or an http(s) URL, without query")
	}
	return nil
}

// HostPort accepts host:port (host may be empty: all interfaces) with a
// port from 0 to 65535.
func HostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("must be host:port, e.g. 127.0.0.1:8081")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be 0–65535")
	}
	return nil
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
