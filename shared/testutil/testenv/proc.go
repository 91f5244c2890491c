package testenv

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a long-running pulsevault command (`provider`, `dev`) started by
// an end-to-end test, with the banner it printed up to "Ready.". Every test
// that starts one goes through StartProc, so the banner is read and the
// process is stopped in one place.
type Proc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr *Buffer  // everything the process wrote, also after the banner
	Banner         []string // stdout lines up to and including the "Ready." line

	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// ProcOptions qualify StartProc. Zero values: Name "process", Ready 30 s,
// Grace 20 s.
type ProcOptions struct {
	Name  string        // in failure messages and the stderr log
	Ready time.Duration // how long the banner may take
	Grace time.Duration // between SIGTERM and SIGKILL at cleanup
}

// StartProc starts cmd (Stdout and Stderr unset: Proc collects them) and
// waits for its banner, the stdout lines up to one that starts with
// "Ready.". It fails t when the process exits first or the banner takes
// longer than o.Ready. At cleanup the process gets SIGTERM, then SIGKILL
// after o.Grace; when t failed, its stderr is logged.
func StartProc(t testing.TB, cmd *exec.Cmd, o ProcOptions) *Proc {
	t.Helper()
	if o.Name == "" {
		o.Name = "process"
	}
	if o.Ready == 0 {
		o.Ready = 30 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = 20 * time.Second
	}
	p := &Proc{Cmd: cmd, Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(p.Stdout, pw)
	cmd.Stderr = p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", o.Name, err)
	}
	go func() { p.err = cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.Stop(o.Grace)
		if t.Failed() {
			t.Logf("%s stderr:\n%s", o.Name, p.Stderr.String())
		}
	})

	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, pr)
	}()
	timeout := time.After(o.Ready)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before ready; stderr:\n%s", o.Name, p.Stderr.String())
			}
			p.Banner = append(p.Banner, l)
			if strings.HasPrefix(l, "Ready.") {
				// The pipe keeps being drained (into Stdout) after the banner.
				go func() {
					for range lines {
					}
				}()
				return p
			}
		case <-timeout:
			t.Fatalf("%s not ready in %s; stdout %q; stderr:\n%s", o.Name, o.Ready, p.Banner, p.Stderr.String())
		}
	}
}

// Done is closed once the process has exited; Err is then its exit error.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for exit status 0), once Done is
// closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to grace, then kills the process; it returns
// the exit error. Stopping a process that exited already only returns it.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Value is the word after words on the banner line that starts with them,
// "" when there is none: Value("gateway") of "gateway http://127.0.0.1:8080"
// is the URL, Value("password", "in") of "password in FILE" is FILE.
func (p *Proc) Value(words ...string) string {
	for _, l := range p.Banner {
		f := strings.Fields(l)
		if len(f) > len(words) && equal(f[:len(words)], words) {
			return f[len(words)]
		}
	}
	return ""
}

// Line is the whole banner line whose first word is first, "" when none.
func (p *Proc) Line(first string) string {
	for _, l := range p.Banner {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return l
		}
	}
	return ""
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// Gateway is the gateway the banner names ("gateway URL", "user NAME",
// "password in FILE"), with the password read from its file; it fails t
// when one of the three is missing.
func (p *Proc) Gateway(t testing.TB) (url, user, password string) {
	t.Helper()
	url, user = p.Value("gateway"), p.Value("user")
	file := p.Value("password", "in")
	b, err := os.ReadFile(file)
	if err != nil || url == "" || user == "" {
		t.Fatalf("banner: gateway %q user %q password file %q (%v):\n%s", url, user, file, err, strings.Join(p.Banner, "\n"))
	}
	return url, user, strings.TrimSpace(string(b))
}
