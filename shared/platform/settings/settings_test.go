package settings

import (
	"strings"
	"testing"
	"time"
)

var list = []Setting{
	{Env: "A_DUR", Default: "2s"},
	{Env: "A_INT", Default: "5"},
	{Env: "A_BYTES", Default: "1024"},
	{Env: "A_STR", Default: "x"},
}

func reader(m map[string]string) *Reader {
	return New(func(k string) string { return m[k] }, list)
}

func TestDefaultsAndValues(t *testing.T) {
	r := reader(map[string]string{"A_STR": "  y ", "A_INT": "7"})
	if got := r.String("A_STR"); got != "y" {
		t.Errorf("String = %q", got)
	}
	if d, n, b := r.Duration("A_DUR", time.Second, time.Hour), r.Int("A_INT", 1, 9), r.Bytes("A_BYTES", 1, 1<<40); d != 2*time.Second || n != 7 || b != 1024 || r.Err() != nil {
		t.Errorf("got %v %d %d %v", d, n, b, r.Err())
	}
}

func TestFirstErrorWins(t *testing.T) {
	r := reader(map[string]string{"A_DUR": "1ms", "A_INT": "x"})
	r.Duration("A_DUR", time.Second, 24*time.Hour)
	r.Int("A_INT", 1, 9)
	want := `invalid A_DUR "1ms": must be a duration from 1s to 24h, such as 2s`
	if r.Err() == nil || r.Err().Error() != want {
		t.Errorf("err = %v, want %s", r.Err(), want)
	}
	r = reader(map[string]string{"A_INT": "0"})
	r.Int("A_INT", 1, 9)
	if r.Err() == nil || !strings.HasPrefix(r.Err().Error(), `invalid A_INT "0": must be a whole number from 1 to 9`) {
		t.Errorf("err = %v", r.Err())
	}
	r = reader(map[string]string{"A_BYTES": "-1"})
	if r.Bytes("A_BYTES", 1, 10); r.Err() == nil || !strings.Contains(r.Err().Error(), "whole number of bytes from 1 to 10") {
		t.Errorf("err = %v", r.Err())
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		100 * time.Millisecond: "100ms", time.Minute: "1m", 24 * time.Hour: "24h",
		90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 8760 * time.Hour: "8760h",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%v) = %q, want %q", d, got, want)
		}
	}
}
