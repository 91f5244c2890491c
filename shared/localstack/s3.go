package localstack

// The supervised versitygw, the S3 server with Object Lock that the
// single-machine stack runs as a child process in place of MinIO.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/childproc"
)

// S3Options configures StartS3.
type S3Options struct {
	Binary       string // path of versitygw
	Port         int    // 0 picks a free port
	DataDir      string // holds root/ (objects) and versions/ (kept outside the root, as versitygw requires)
	AccessKey    string
	SecretKey    string
	Region       string
	NATSURL      string // bucket notifications are published here
	EventSubject string
	LogFile      io.Writer // versitygw's own output; nil discards it
	Logger       *slog.Logger
}

// S3 is a supervised versitygw: restarted with backoff if it dies,
// stopped with SIGTERM (then SIGKILL) by Stop.
type S3 struct {
	opts     S3Options
	endpoint string
	cancel   context.CancelFunc
	done     chan struct{}

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartS3 launches versitygw and waits until its health endpoint answers.
func StartS3(ctx context.Context, o S3Options) (*S3, error) {
	if o.Binary == "" || o.DataDir == "" || o.NATSURL == "" || o.EventSubject == "" {
		return nil, errors.New("localstack: s3: Binary, DataDir, NATSURL and EventSubject are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LogFile == nil {
		o.LogFile = io.Discard
	}
	for _, d := range []string{o.root(), o.versions()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("localstack: s3: %w", err)
		}
	}
	if o.Port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("localstack: s3: %w", err)
		}
		o.Port = p
	}
	s := &S3{opts: o, endpoint: "http://127.0.0.1:" + strconv.Itoa(o.Port), done: make(chan struct{})}
	p, err := s.launch()
	if err != nil {
		return nil, err
	}
	if err := s.waitHealthy(ctx, p, 15*time.Second); err != nil {
		s.kill()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.supervise(runCtx, p)
	return s, nil
}

// Endpoint is the S3 URL, e.g. http://127.0.0.1:9000.
func (s *S3) Endpoint() string { return s.endpoint }

// PID is the current versitygw process id (for fault tests).
func (s *S3) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop terminates versitygw: SIGTERM, then SIGKILL after grace.
func (s *S3) Stop(grace time.Duration) {
	s.cancel()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(grace):
		s.kill()
		<-s.done
	}
}

func (o S3Options) root() string     { return filepath.Join(o.DataDir, "root") }
func (o S3Options) versions() string { return filepath.Join(o.DataDir, "versions") }

// proc is one run of versitygw; done closes when it exits, then err is set.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *S3) launch() (*proc, error) {
	o := s.opts
	// --keep-alive: versitygw closes every connection after one request by
	// default, so each S3 call (a meta.json read per sign-url, a segment
	// per media GET) paid a TCP handshake and left a TIME_WAIT socket;
	// a few hundred calls a second ran the ephemeral ports out.
	cmd := exec.Command(o.Binary, "--keep-alive",
		"--port", "127.0.0.1:"+strconv.Itoa(o.Port),
		"--access", o.AccessKey, "--region", o.Region,
		"--event-nats-url", o.NATSURL, "--event-nats-topic", o.EventSubject,
		"--health", "/health",
		"posix", "--versioning-dir", o.versions(), o.root())
	// The secret goes by environment: every local user can read a
	// process's argv (ps, /proc/PID/cmdline), only its owner its environment.
	cmd.Env = append(os.Environ(), "ROOT_SECRET_ACCESS_KEY="+o.SecretKey)
	cmd.Stdout, cmd.Stderr = o.LogFile, o.LogFile
	// Pdeathsig: versitygw must not outlive us even if we are SIGKILLed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := childproc.Start(cmd); err != nil {
		return nil, fmt.Errorf("localstack: s3: start %s: %w", o.Binary, err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (s *S3) waitHealthy(ctx context.Context, p *proc, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("localstack: s3: versitygw exited at start (%v); is NATS up and port %d free? see its log", p.err, s.opts.Port)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := client.Get(s.endpoint + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("localstack: s3: versitygw not healthy on %s within %s", s.endpoint, limit)
}

// supervise restarts versitygw when it dies, with exponential backoff.
func (s *S3) supervise(ctx context.Context, p *proc) {
	defer close(s.done)
	backoff := 200 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			<-p.done
			return
		case <-p.done:
		}
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("versitygw exited; restarting", "err", p.err, "backoff", backoff)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			next, err := s.launch()
			if err != nil {
				s.opts.Logger.Error("versitygw restart failed", "err", err)
				continue
			}
			p = next
			if s.waitHealthy(ctx, p, 15*time.Second) == nil {
				backoff = 200 * time.Millisecond
				s.opts.Logger.Info("versitygw restarted", "endpoint", s.endpoint)
			}
			break
		}
	}
}

func (s *S3) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
