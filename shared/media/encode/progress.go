package encode

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/mieweb/pulsevault/shared/media/meta"
)

// progressReporter writes progress to meta.json at most every interval
// and only on a change of a whole percent, off ffmpeg's path.
type progressReporter struct {
	latest chan float64
	done   chan struct{}
	wg     sync.WaitGroup
}

func (p *progressReporter) push(pct float64) {
	select {
	case <-p.latest:
	default:
	}
	select {
	case p.latest <- pct:
	default:
	}
}

func (p *progressReporter) stop() { close(p.done); p.wg.Wait() }

func (w *Worker) reportProgress(ctx context.Context, log *slog.Logger, id string, names ...string) *progressReporter {
	p := &progressReporter{latest: make(chan float64, 1), done: make(chan struct{})}
	p.wg.Go(func() {
		var last time.Time
		written := 0.0
		for {
			select {
			case <-p.done:
				return
			case pct := <-p.latest:
				pct = math.Floor(pct)
				if time.Since(last) < w.Config.ProgressInterval || pct < written+1 || pct >= 100 {
					continue
				}
				last = time.Now()
				_, err := w.Meta.Update(ctx, id, func(v *meta.Video) error {
					changed := false
					for _, name := range names {
						if r := find(v, name); r != nil && r.State == meta.RenditionRunning && r.Progress < pct {
							r.Progress, changed = pct, true
						}
					}
					if !changed {
						return errSkip
					}
					return nil
				})
				if err != nil && !errors.Is(err, errSkip) {
					log.Warn("transcode: progress update failed", "err", err)
					continue
				}
				written = pct
			}
		}
	})
	return p
}
