// Package copybuf copies bodies through pooled 256 KiB buffers. io.Copy's
// own 32 KiB buffer, allocated per call, means eight times the reads,
// writes and syscalls per MiB on the media and upload paths, where every
// byte crosses two or three processes.
package copybuf

import (
	"io"
	"sync"
)

// Size is the buffer size.
const Size = 256 << 10

var pool = sync.Pool{New: func() any { b := make([]byte, Size); return &b }}

// Pool is a pool of Size buffers; it satisfies httputil.BufferPool.
type Pool struct{}

// Get returns a buffer of Size bytes.
func (Pool) Get() []byte { return *pool.Get().(*[]byte) }

// Put returns b to the pool; buffers of another size are dropped.
func (Pool) Put(b []byte) {
	if cap(b) == Size {
		b = b[:Size]
		pool.Put(&b)
	}
}

// Copy is io.Copy through a pooled buffer. Like io.CopyBuffer it still
// defers to src's WriteTo or dst's ReadFrom when they have one.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	b := Pool{}.Get()
	defer Pool{}.Put(b)
	return io.CopyBuffer(dst, src, b)
}

// WriterOnly hides every method of a writer but Write, so that a copy into
// it uses the caller's buffer instead of the writer's ReadFrom.
type WriterOnly struct{ io.Writer }
