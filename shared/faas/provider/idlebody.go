package provider

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// bodyIdleTimeout is how long the gateway waits for the next bytes of a
// request body (tusd's network timeout, the functions' side of the same
// rule). Without it a client that stops mid-body holds its connection and
// the proxy goroutine for good: net/http cannot answer while the proxy's
// read of the body is blocked, not even after the replica gave up.
const bodyIdleTimeout = time.Minute

// idleBody ends reads of r's body that wait longer than idle for data, by
// moving the connection's read deadline ahead of each read. The deadline
// is cleared at the end of the body, so a long invocation whose body was
// sent is not cut, and by the returned func when the request is done, so
// a body the function did not read to its end leaves no deadline behind
// for the next request on a kept-alive connection.
func idleBody(w http.ResponseWriter, r *http.Request, idle time.Duration) (done func()) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return func() {}
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(idle)); err != nil {
		return func() {} // not an HTTP/1 or HTTP/2 server connection: leave it alone
	}
	r.Body = &idleReader{ReadCloser: r.Body, rc: rc, idle: idle}
	return func() { _ = rc.SetReadDeadline(time.Time{}) }
}

type idleReader struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done bool
}

func (b *idleReader) Read(p []byte) (int, error) {
	if !b.done {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
