package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mieweb/pulsevault/shared/platform/childproc"
)

// replica is one child process of a function (`BIN fn NAME`), kept running
// by its supervisor goroutine: started on a free loopback port in its own
// process group, ready once /_/health answers, restarted with exponential
// backoff when it dies, stopped with SIGTERM then SIGKILL after the grace
// period. When it ends, whatever is left of its group is killed.
type replica struct {
	p        *Provider
	f        *function
	instance string   // like a pod name: NAME-N
	env      []string // everything but port

	stopOnce sync.Once
	stopCh   chan struct{} // closed to stop
	done     chan struct{} // closed when the supervisor has returned

	mu       sync.Mutex
	addr     string // 127.0.0.1:port while ready
	pid      int
	restarts int
}

func (r *replica) ready() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr, r.addr != ""
}

func (r *replica) setReady(addr string) {
	r.mu.Lock()
	r.addr = addr
	r.mu.Unlock()
	r.f.changed()
}

// stop asks the supervisor to stop the process and waits until it has.
func (r *replica) stop() {
	r.stopOnce.Do(func() { close(r.stopCh) })
	<-r.done
}

func (r *replica) stopping() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// supervise runs the process until stop. It owns the process.
func (r *replica) supervise() {
	defer close(r.done)
	defer r.setReady("")
	log := r.p.log.With("function_name", r.f.name, "instance", r.instance)
	backoff := r.p.opts.RestartBackoff
	for !r.stopping() {
		started := time.Now()
		err := r.runOnce(log)
		if r.stopping() {
			return
		}
		if time.Since(started) > 30*time.Second {
			backoff = r.p.opts.RestartBackoff // it had been fine for a while
		}
		r.mu.Lock()
		r.restarts++
		n := r.restarts
		r.mu.Unlock()
		log.Warn("function process ended; restarting", "err", err, "restarts", n, "backoff", backoff.String())
		select {
		case <-r.stopCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.p.opts.MaxRestartBackoff)
	}
}

// runOnce starts the process, waits for it to be ready, serves until it
// exits or stop is asked, and returns why it ended.
func (r *replica) runOnce(log *slog.Logger) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("no free port: %w", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(r.p.opts.BinPath, "fn", r.f.name)
	cmd.Env = append(append([]string(nil), r.env...), "port="+addr)
	cmd.Dir = r.p.opts.DataDir
	stdout, stderr := r.f.logs.writer(r.instance), r.f.logs.writer(r.instance)
	defer stdout.flush()
	defer stderr.flush()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so stopping reaches whatever it starts
	// (ffmpeg); SIGKILL when the provider dies, so nothing outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	if err := childproc.Start(cmd); err != nil {
		return fmt.Errorf("start %s: %w", r.p.opts.BinPath, err)
	}
	pid := cmd.Process.Pid
	r.mu.Lock()
	r.pid = pid
	r.mu.Unlock()
	exited := make(chan error, 1)
	go func() {
		// Learn of the death before reaping: while the process is a
		// zombie its pid stays taken, so once it is gone for good the
		// replica is already out of the rotation.
		waitDead(pid)
		r.setReady("")
		// Nothing it started may outlive it. Until the reap below the
		// pid (and so the group id) cannot be reused: this reaches only
		// our own group.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		exited <- cmd.Wait()
	}()

	switch err := r.waitHealthy(addr, exited); {
	case errors.Is(err, errStopped):
		return r.terminate(pid, exited)
	case errors.Is(err, errExited):
		return err
	case err != nil:
		_ = r.terminate(pid, exited)
		return err
	}
	r.setReady(addr)
	log.Info("function replica ready", "pid", pid, "addr", addr)
	select {
	case err := <-exited:
		r.setReady("")
		if err == nil {
			err = errors.New("exited with status 0")
		}
		return err
	case <-r.stopCh:
		r.setReady("")
		return r.terminate(pid, exited)
	}
}

var (
	errStopped = errors.New("stopped")
	errExited  = errors.New("exited before it was ready")
)

// waitHealthy polls /_/health until it answers 200, the process exits, the
// ready timeout passes or stop is asked.
func (r *replica) waitHealthy(addr string, exited chan error) error {
	deadline := time.NewTimer(r.p.opts.ReadyTimeout)
	defer deadline.Stop()
	wait := 5 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/_/health", nil)
		resp, err := r.p.health.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("status 0")
			}
			return fmt.Errorf("%w: %v", errExited, err)
		case <-r.stopCh:
			return errStopped
		case <-deadline.C:
			return fmt.Errorf("not ready within %s", r.p.opts.ReadyTimeout)
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// terminate sends SIGTERM to the process, SIGKILL to its whole group after
// the grace period, and waits for the process to be reaped.
func (r *replica) terminate(pid int, exited chan error) error {
	select {
	case err := <-exited: // already gone (and reaped): signal nothing
		return err
	default:
	}
	// SIGTERM to the function alone, as Kubernetes signals a container's
	// main process: what it started (ffmpeg) keeps working while it drains.
	_ = syscall.Kill(pid, syscall.SIGTERM)
	grace := r.p.opts.Grace
	if grace <= 0 {
		grace = drainTime(r.env)
	}
	select {
	case err := <-exited:
		return err
	case <-time.After(grace):
	}
	r.p.log.Warn("function process did not stop in time; killing it", "function_name", r.f.name,
		"instance", r.instance, "pid", pid, "grace", grace.String())
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return <-exited
}

// pidNow is the process id of the current (or last) process.
func (r *replica) pidNow() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pid
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitDead blocks until the process has exited, without reaping it.
func waitDead(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
