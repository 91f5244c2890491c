package loopback

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// TestMain makes the test binary double as the child process: with
// LOOPBACK_CHILD=1 it reads "URL RANGE" lines on stdin, GETs each (a new
// connection every time, as ffmpeg does) and answers "STATUS SHA256" or
// "error MESSAGE" on stdout.
func TestMain(m *testing.M) {
	if os.Getenv("LOOPBACK_CHILD") == "1" {
		child()
		return
	}
	os.Exit(m.Run())
}

func child() {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		u, rng, _ := strings.Cut(sc.Text(), " ")
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err == nil && rng != "" {
			req.Header.Set("Range", rng)
		}
		var res *http.Response
		if err == nil {
			res, err = c.Do(req)
		}
		if err != nil {
			fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Println(res.StatusCode, sum(b))
	}
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// proc is a running child.
type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild(t *testing.T) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "LOOPBACK_CHILD=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) stop() {
	p.in.Close()
	_ = p.cmd.Wait()
}

func (p *proc) send(u, rng string) {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.in, "%s %s\n", u, rng); err != nil {
		p.t.Fatal(err)
	}
}

// answer is the child's answer to the last request sent: the status and
// the body's hash, or 0 and the error.
func (p *proc) answer() (int, string) {
	p.t.Helper()
	if !p.out.Scan() {
		p.t.Fatalf("child ended: %v", p.out.Err())
	}
	a, b, _ := strings.Cut(p.out.Text(), " ")
	code, _ := strconv.Atoi(a)
	return code, b
}

func (p *proc) get(u, rng string) (int, string) {
	p.t.Helper()
	p.send(u, rng)
	return p.answer()
}

func object(b []byte) Object {
	return Object{Size: int64(len(b)), ContentType: "video/mp4", Ext: ".mp4",
		Open: func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b[off : off+n])), nil
		}}
}

func payload() []byte {
	b := make([]byte, 200_000)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// The bound child reads the object, whole and by range; a second process,
// the server's own process and a wrong path get nothing.
func TestOnlyTheBoundChild(t *testing.T) {
	data := payload()
	s, err := Serve(t.Context(), object(data))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || !strings.HasSuffix(s.URL(), ".mp4") {
		t.Fatalf("URL %s", s.URL())
	}
	a, b := startChild(t), startChild(t)
	if err := s.Bind(a.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(b.cmd.Process.Pid); err == nil {
		t.Error("a second Bind was accepted")
	}

	for _, c := range []struct {
		rng      string
		code     int
		from, to int
	}{
		{"", 200, 0, len(data)},
		{"bytes=0-", 206, 0, len(data)}, // what ffmpeg sends first
		{"bytes=199000-", 206, 199000, len(data)},
		{"bytes=1000-1999", 206, 1000, 2000},
		{"bytes=-10", 206, len(data) - 10, len(data)},
		{"bytes=0-0,5-9", 200, 0, len(data)}, // several ranges: the whole object
	} {
		if code, h := a.get(s.URL(), c.rng); code != c.code || h != sum(data[c.from:c.to]) {
			t.Errorf("child, Range %q: %d %s, want %d and bytes %d-%d", c.rng, code, h, c.code, c.from, c.to)
		}
	}
	if code, _ := a.get(s.URL(), "bytes=200000-"); code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("child, range past the end: %d, want 416", code)
	}
	u, _ := url.Parse(s.URL())
	for _, p := range []string{"/", u.Path + "x", strings.ToLower(u.Path), "/../" + u.Path} {
		if code, _ := a.get("http://"+u.Host+p, ""); code != http.StatusNotFound {
			t.Errorf("child, wrong path %q: %d, want 404", p, code)
		}
	}

	// Anyone else who read the URL in the child's argv.
	if code, _ := b.get(s.URL(), ""); code != http.StatusForbidden {
		t.Errorf("second process: %d, want 403", code)
	}
	res, err := http.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || bytes.Contains(body, data[:64]) {
		t.Errorf("the server's own process: %d, want 403 and no data", res.StatusCode)
	}
	if s.Refused() != 2 {
		t.Errorf("Refused() = %d, want 2", s.Refused())
	}

	// Once the child is gone, nobody is admitted: the next process cannot
	// pass for it (a reused pid has another start time).
	a.stop()
	c := startChild(t)
	if code, _ := c.get(s.URL(), ""); code != http.StatusForbidden {
		t.Errorf("process started after the child ended: %d, want 403", code)
	}
}

// A child that connects before its starter has bound the server is
// admitted once Bind comes.
func TestConnectBeforeBind(t *testing.T) {
	data := payload()
	s, err := Serve(t.Context(), object(data))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	port, _ := strconv.Atoi(s.URL()[len("http://127.0.0.1:"):strings.LastIndexByte(s.URL(), '/')])
	a := startChild(t)
	a.send(s.URL(), "")
	for deadline := time.Now().Add(30 * time.Second); !connected(t, port); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child never connected")
		}
	}
	if err := s.Bind(a.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if code, h := a.answer(); code != 200 || h != sum(data) {
		t.Errorf("child that connected before Bind: %d, want 200 and the object", code)
	}
}

// connected reports whether a connection to port on 127.0.0.1 is established.
func connected(t *testing.T, port int) bool {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := fs.NetTCP()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range tcp {
		if l.RemPort == uint64(port) && l.St == 1 { // 1: ESTABLISHED
			return true
		}
	}
	return false
}

// The server ends with its context: the child, bound, is refused after.
func TestExpiry(t *testing.T) {
	data := payload()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Serve(ctx, object(data))
	if err != nil {
		t.Fatal(err)
	}
	a := startChild(t)
	if err := s.Bind(a.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if code, _ := a.get(s.URL(), ""); code != 200 {
		t.Fatalf("before expiry: %d", code)
	}
	cancel()
	<-s.done
	if code, msg := a.get(s.URL(), ""); code != 0 || !strings.Contains(msg, "connection refused") {
		t.Errorf("after expiry: %d %s, want connection refused", code, msg)
	}

	// Close does the same.
	s2, err := Serve(t.Context(), object(data))
	if err != nil {
		t.Fatal(err)
	}
	b := startChild(t)
	if err := s2.Bind(b.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if code, _ := b.get(s2.URL(), ""); code != 0 {
		t.Errorf("after Close: %d, want no answer", code)
	}
}

// A store that fails before any byte is sent is a 502, which ffmpeg
// reports as the source unreachable.
func TestStoreFailure(t *testing.T) {
	obj := Object{Size: 10, Open: func(context.Context, int64, int64) (io.ReadCloser, error) {
		return nil, errors.New("store down")
	}}
	s, err := Serve(t.Context(), obj)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := startChild(t)
	if err := s.Bind(a.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if code, _ := a.get(s.URL(), "bytes=0-"); code != http.StatusBadGateway {
		t.Errorf("store down: %d, want 502", code)
	}
}

func TestBindToNoProcess(t *testing.T) {
	s, err := Serve(t.Context(), object([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(1 << 30); err == nil {
		t.Error("bound to a pid that does not exist")
	}
	if _, err := http.Get(s.URL()); err == nil {
		t.Error("a server whose Bind failed still answers")
	}
}

func TestByteRange(t *testing.T) {
	for _, c := range []struct {
		spec          string
		size          int64
		off, n        int64
		partial, good bool
	}{
		{"", 100, 0, 100, false, true},
		{"bytes=0-", 100, 0, 100, true, true},
		{"bytes=10-", 100, 10, 90, true, true},
		{"bytes=10-19", 100, 10, 10, true, true},
		{"bytes=90-200", 100, 90, 10, true, true},
		{"bytes=99-99", 100, 99, 1, true, true},
		{"bytes=-5", 100, 95, 5, true, true},
		{"bytes=-500", 100, 0, 100, true, true},
		{"bytes=100-", 100, 0, 0, false, false},
		{"bytes=0-", 0, 0, 0, false, false},
		{"bytes=-0", 100, 0, 0, false, false},
		{"bytes=5-1", 100, 0, 100, false, true}, // invalid: ignored
		{"bytes=+5-", 100, 0, 100, false, true}, // invalid: ignored
		{"bytes=a-b", 100, 0, 100, false, true}, // invalid: ignored
		{"items=0-5", 100, 0, 100, false, true}, // other unit: ignored
		{"bytes=0-1,3-4", 100, 0, 100, false, true},
		{"bytes=-", 100, 0, 100, false, true},
		{"bytes=99999999999999999999-", 100, 0, 100, false, true},
	} {
		off, n, partial, good := byteRange(c.spec, c.size)
		if off != c.off || n != c.n || partial != c.partial || good != c.good {
			t.Errorf("byteRange(%q, %d) = %d %d %v %v, want %d %d %v %v", c.spec, c.size, off, n, partial, good, c.off, c.n, c.partial, c.good)
		}
	}
}
