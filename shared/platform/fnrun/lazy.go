package fnrun

import (
	"sync"
	"time"
)

// lazyRetry is how long a failed build is answered from memory before it is
// tried again.
const lazyRetry = time.Second

// Lazy returns a function that builds a value with build on first use and
// then returns it to every caller; concurrent first callers wait for the one
// build. A function's dependencies (NATS, S3, secrets) may come up after the
// function does, so a failure is not cached for good: it is tried again
// after a short pause, which spares a burst of requests each waiting on the
// same failing dial.
func Lazy[T any](build func() (T, error)) func() (T, error) {
	return lazy(build, lazyRetry, time.Now)
}

func lazy[T any](build func() (T, error), retry time.Duration, now func() time.Time) func() (T, error) {
	var (
		mu       sync.Mutex
		built    bool
		v        T
		err      error
		failedAt time.Time
	)
	return func() (T, error) {
		mu.Lock()
		defer mu.Unlock()
		if built {
			return v, nil
		}
		if err != nil && now().Sub(failedAt) < retry {
			return v, err
		}
		if v, err = build(); err != nil {
			var zero T
			v, failedAt = zero, now()
			return v, err
		}
		built = true
		return v, nil
	}
}
