package copybuf

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

// chunks records the size of every write it gets.
type chunks struct {
	bytes.Buffer
	sizes []int
}

func (c *chunks) Write(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	return c.Buffer.Write(p)
}

func TestCopy(t *testing.T) {
	data := make([]byte, 3*Size+17)
	rand.Read(data)
	var dst chunks
	// A reader without WriteTo and a writer without ReadFrom (bytes.Buffer
	// has one): the copy goes through the pooled buffer.
	n, err := Copy(WriterOnly{&dst}, io.LimitReader(bytes.NewReader(data), int64(len(data))))
	if err != nil || n != int64(len(data)) || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("copied %d of %d, %v", n, len(data), err)
	}
	if len(dst.sizes) != 4 || dst.sizes[0] != Size {
		t.Errorf("writes %v, want 3 of %d and the rest", dst.sizes, Size)
	}
	b := Pool{}.Get()
	if len(b) != Size {
		t.Errorf("pooled buffer of %d bytes", len(b))
	}
	Pool{}.Put(b[:10]) // resliced: back to full length on the next Get
	Pool{}.Put(make([]byte, 10))
	if b := (Pool{}).Get(); len(b) != Size {
		t.Errorf("pooled buffer of %d bytes after foreign puts", len(b))
	}
}
