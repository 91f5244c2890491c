// Package loopback lets a child process (ffmpeg, ffprobe) read one stored
// object over HTTP with no credential in its arguments.
//
// Every local user can read a process's argv (/proc/<pid>/cmdline, ps), so
// a presigned URL given to ffmpeg is a download link for anyone on the
// machine while it is valid. Instead the function serves the object itself
// on 127.0.0.1, under a random path, reading it from the store with its own
// credentials, and answers only the one child process it is bound to: the
// peer socket of each connection (found in /proc/net/tcp by the
// connection's two addresses) must be an open file of that process, whose
// start time must still be the one seen at Bind (a reused pid is another
// process). The URL in the child's argv is useless to anyone else, another
// process of ours included. The server ends with its context and when the
// caller closes it, as the child exits.
//
// ffmpeg and ffprobe read an MP4 whose moov atom is at the end by seeking:
// each seek is a new connection with a Range header ("bytes=N-"), each one
// checked and served from a ranged GET of the store. stdin would not do:
// a pipe cannot seek.
package loopback

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"

	"github.com/mieweb/pulsevault/shared/storage"
)

// bindWait bounds how long a connection made before Bind waits for it: the
// child connects as soon as it runs, possibly before its starter has bound
// the server to its pid.
const bindWait = 10 * time.Second

// NewRefusedCounter is the counter of refused loopback requests, one per
// function that serves originals (transcode, upload-finalize) on its own
// registry; hand it to Object.CountRefused.
func NewRefusedCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulsevault_loopback_refused_total",
		Help: "Requests for an original served to ffmpeg/ffprobe over loopback that did not come from the child process it was made for (refused with 403).",
	})
}

// Object is one stored object as the server reads it.
type Object struct {
	Size        int64
	ContentType string // sent as is; empty: application/octet-stream
	Ext         string // extension the URL ends with (".mp4"): ffmpeg's format probe weighs it
	// Open reads length bytes from offset (length > 0).
	Open func(ctx context.Context, offset, length int64) (io.ReadCloser, error)
	// Refused, if set, counts the requests refused for not coming from the
	// bound child (see NewRefusedCounter).
	Refused prometheus.Counter
}

// CountRefused returns o counting its refused requests on c.
func (o Object) CountRefused(c prometheus.Counter) Object {
	o.Refused = c
	return o
}

var extRe = regexp.MustCompile(`^\.[a-z0-9]{1,8}$`)

// Stored is the object key of bucket, read with st's credentials.
func Stored(ctx context.Context, st *storage.Store, bucket, key string) (Object, error) {
	return StoredVersion(ctx, st, bucket, key, "")
}

// StoredVersion is Stored of one version (versionID "": the latest); every
// read the child makes asks for that version, whatever was written since.
func StoredVersion(ctx context.Context, st *storage.Store, bucket, key, versionID string) (Object, error) {
	info, err := st.StatVersion(ctx, bucket, key, versionID)
	if err != nil {
		return Object{}, err
	}
	return fromInfo(st, info, versionID), nil
}

// FromInfo is the object info describes (from st.Stat), read with st's
// credentials.
func FromInfo(st *storage.Store, info storage.Info) Object { return fromInfo(st, info, "") }

func fromInfo(st *storage.Store, info storage.Info, version string) Object {
	ext := path.Ext(info.Key)
	if !extRe.MatchString(ext) {
		ext = ""
	}
	bucket, key := info.Bucket, info.Key
	return Object{Size: info.Size, ContentType: info.ContentType, Ext: ext,
		Open: func(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
			rc, _, err := st.GetVersion(ctx, bucket, key, version, offset, length)
			return rc, err
		}}
}

// Server serves one Object to one child process. Use Serve.
type Server struct {
	obj  Object
	path string
	url  string
	srv  *http.Server

	bindOnce sync.Once
	bound    chan struct{} // closed by Bind
	proc     procfs.Proc
	start    uint64 // the child's start time, in clock ticks since boot

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	refused   atomic.Int64
}

// Serve starts serving obj on a free port of 127.0.0.1 until Close or the
// end of ctx, whichever comes first. Every request waits for Bind.
func Serve(ctx context.Context, obj Object) (*Server, error) {
	if obj.Open == nil || obj.Size < 0 {
		return nil, errors.New("loopback: object without size or reader")
	}
	if obj.Ext != "" && !extRe.MatchString(obj.Ext) {
		return nil, fmt.Errorf("loopback: bad extension %q", obj.Ext)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loopback: listen: %w", err)
	}
	s := &Server{obj: obj, path: "/" + rand.Text() + obj.Ext, bound: make(chan struct{}), done: make(chan struct{})}
	s.url = "http://" + ln.Addr().String() + s.path
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() { _ = s.srv.Serve(ln) }()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// URL is what the child opens. It is no secret: the child's argv shows it.
func (s *Server) URL() string { return s.url }

// Bind admits the process pid (started with URL in its arguments) and no
// other. Call it once, right after starting the child.
func (s *Server) Bind(pid int) error {
	err := errors.New("loopback: already bound")
	s.bindOnce.Do(func() {
		var p procfs.Proc
		var st procfs.ProcStat
		if p, err = procfs.NewProc(pid); err == nil {
			st, err = p.Stat()
		}
		if err == nil {
			// Checked now so that a /proc the check cannot read (a
			// systemd ProcSubset=pid) fails here, clearly, instead of
			// as the child refused.
			_, err = netTCP()
		}
		if err != nil {
			err = fmt.Errorf("loopback: bind to process %d: %w", pid, err)
			_ = s.Close() // nobody may ever be admitted
			return
		}
		s.proc, s.start = p, st.Starttime
		close(s.bound)
	})
	return err
}

// Close stops the server and ends the connections it is serving.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.srv.Close()
	})
	return nil
}

// Refused counts the requests refused because they did not come from the
// bound child.
func (s *Server) Refused() int64 { return s.refused.Load() }

// ServeHTTP answers one request: 403 to anyone but the child, then 404 off
// the path, and the object or the one range asked for.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.admit(r) {
		s.refused.Add(1)
		if s.obj.Refused != nil {
			s.obj.Refused.Inc()
		}
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.URL.Path), []byte(s.path)) != 1 {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	off, n, partial, ok := byteRange(r.Header.Get("Range"), s.obj.Size)
	if !ok {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(s.obj.Size, 10))
		http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	var body io.ReadCloser = http.NoBody
	if r.Method == http.MethodGet && n > 0 {
		// Opened before answering, so a store failure is a 502 (ffmpeg and
		// ffprobe retry or report the source unreachable), not a cut body.
		var err error
		if body, err = s.obj.Open(r.Context(), off, n); err != nil {
			http.Error(w, "store unavailable", http.StatusBadGateway)
			return
		}
	}
	defer body.Close()
	ct := s.obj.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	code := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, s.obj.Size))
		code = http.StatusPartialContent
	}
	w.WriteHeader(code)
	// A store error mid-way cuts the response short of its Content-Length:
	// ffmpeg reconnects from where it stopped (-reconnect).
	_, _ = io.Copy(w, body)
}

// admit reports whether r came from the bound child.
func (s *Server) admit(r *http.Request) bool {
	wait := time.NewTimer(bindWait)
	defer wait.Stop()
	select {
	case <-s.bound:
	case <-s.done:
		return false
	case <-r.Context().Done():
		return false
	case <-wait.C:
		return false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	local, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if err != nil || !ok {
		return false
	}
	return s.fromChild(peer, local.AddrPort())
}

// fromChild reports whether the TCP connection from peer to local is one
// of the child's sockets: the socket whose own address is peer and whose
// remote address is local must be among the child's open files.
func (s *Server) fromChild(peer, local netip.AddrPort) bool {
	tcp, err := netTCP()
	if err != nil {
		return false
	}
	var inode uint64
	for _, l := range tcp {
		if l.LocalPort == uint64(peer.Port()) && l.RemPort == uint64(local.Port()) &&
			sameIP(l.LocalAddr, peer.Addr()) && sameIP(l.RemAddr, local.Addr()) {
			inode = l.Inode
			break
		}
	}
	if inode == 0 { // gone, or not a socket of this network namespace
		return false
	}
	fds, err := s.proc.FileDescriptorTargets()
	if err != nil || !slices.Contains(fds, "socket:["+strconv.FormatUint(inode, 10)+"]") {
		return false
	}
	// Read after the descriptors: if the pid still names the child now,
	// it named the child when they were read.
	st, err := s.proc.Stat()
	return err == nil && st.Starttime == s.start
}

// netTCP reads the IPv4 TCP socket table of our network namespace.
func netTCP() (procfs.NetTCP, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	return fs.NetTCP()
}

func sameIP(ip net.IP, a netip.Addr) bool {
	b, ok := netip.AddrFromSlice(ip)
	return ok && b.Unmap() == a.Unmap()
}

// byteRange is the part of an object of size bytes that the Range header
// spec asks for: one range "bytes=a-b", "bytes=a-" or "bytes=-n". A missing,
// malformed or multi-range header asks for everything (partial false),
// which RFC 9110 lets a server answer. ok is false when the range is
// unsatisfiable (416).
func byteRange(spec string, size int64) (off, n int64, partial, ok bool) {
	r, found := strings.CutPrefix(spec, "bytes=")
	a, b, dash := strings.Cut(strings.TrimSpace(r), "-")
	if !found || !dash || strings.Contains(r, ",") {
		return 0, size, false, true
	}
	num := func(s string) (int64, bool) {
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil && v >= 0 && s != "" && s[0] != '+'
	}
	switch {
	case a == "": // the last n bytes
		last, good := num(b)
		if !good {
			return 0, size, false, true
		}
		if last == 0 || size == 0 {
			return 0, 0, false, false
		}
		last = min(last, size)
		return size - last, last, true, true
	default:
		first, good := num(a)
		if !good {
			return 0, size, false, true
		}
		end := size - 1
		if b != "" {
			e, good := num(b)
			if !good || e < first {
				return 0, size, false, true
			}
			end = min(e, size-1)
		}
		if first >= size {
			return 0, 0, false, false
		}
		return first, end - first + 1, true, true
	}
}
