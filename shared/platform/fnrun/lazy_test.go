package fnrun

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLazyBuildsOnce(t *testing.T) {
	var calls atomic.Int32
	get := Lazy(func() (*int, error) {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond) // let the callers pile up
		n := 42
		return &n, nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v, err := get(); err != nil || *v != 42 {
				t.Errorf("get = %v, %v", v, err)
			}
		})
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("built %d times", calls.Load())
	}
}

func TestLazyRetriesAfterPause(t *testing.T) {
	clock := time.Unix(0, 0)
	calls := 0
	get := lazy(func() (string, error) {
		if calls++; calls == 1 {
			return "partial", errors.New("nats down")
		}
		return "ok", nil
	}, time.Second, func() time.Time { return clock })

	if v, err := get(); err == nil || v != "" {
		t.Fatalf("first: %q, %v", v, err)
	}
	if _, err := get(); err == nil || calls != 1 {
		t.Fatalf("within the pause: err %v after %d builds", err, calls)
	}
	clock = clock.Add(time.Second)
	if v, err := get(); err != nil || v != "ok" || calls != 2 {
		t.Fatalf("after the pause: %q, %v after %d builds", v, err, calls)
	}
	if v, _ := get(); v != "ok" || calls != 2 {
		t.Fatalf("cached: %q after %d builds", v, calls)
	}
}
