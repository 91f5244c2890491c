package tusupload

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
)

// exactBody guards a PATCH whose length is unknown (sent chunked, as
// gateways and of-watchdog forward bodies). tusd then reads up to the bytes
// the upload still takes and, finding more, answers 413 — but only after
// finishing the upload with the bytes it took. Here the bytes that would
// complete the upload are handed over only once the body is known to end
// with them; if more follows, the read fails as an over-long body does, and
// the upload stays incomplete and resumable.
func exactBody(r *http.Request, size int64) {
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 || offset > size {
		return // tusd refuses the request before reading the body
	}
	r.Body = &exactReader{br: bufio.NewReader(r.Body), body: r.Body, left: size - offset, limit: size - offset}
}

type exactReader struct {
	br    *bufio.Reader
	body  io.Closer
	left  int64 // bytes the upload still takes
	limit int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		if _, err := e.br.Peek(1); err == nil {
			return 0, &http.MaxBytesError{Limit: e.limit}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.br.Read(p)
	if int64(n) == e.left {
		if _, perr := e.br.Peek(1); perr == nil {
			return 0, &http.MaxBytesError{Limit: e.limit} // withhold the completing bytes
		}
	}
	e.left -= int64(n)
	return n, err
}

func (e *exactReader) Close() error { return e.body.Close() }
