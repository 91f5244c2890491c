// Package tier splits the tests in two tiers. The unit tier is what
// `go test -short ./...` (`make unit`) runs: pure logic and in-process
// fakes, on a fresh clone with nothing built or installed. The integration
// tier adds the tests that need real services or programs (versitygw,
// ffmpeg, nginx, a built pulsevault, the tools `make tools` builds); under
// -short they skip with a one-line reason instead of failing.
package tier

import "testing"

// Integration skips t under -short: it needs what, which the unit tier
// does not have (e.g. "versitygw", "ffmpeg").
func Integration(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs " + what + ": integration tier")
	}
}

// Slow skips t under -short: it needs no program, but it waits on real
// time (lease expiry, a cluster's elections) for longer than the unit tier
// can spend; why says what it waits for.
func Slow(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow (" + why + "): integration tier")
	}
}
