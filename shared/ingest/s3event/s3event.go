// Package s3event decodes the S3 bucket notifications that MinIO and versitygw
// publish to NATS into aws-lambda-go's events.S3Event, smoothing over the ways
// each server departs from what that type expects.
//
// A notification says that something happened, not what the object is now:
// events arrive out of order, duplicated or not at all, and versitygw reports
// size 0 for multipart uploads and copies. Callers should HEAD the object
// before acting, and treat Size, VersionID and ETag here as hints.
package s3event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// MaxMessageSize caps the accepted message length. A real notification is a
// few KiB; the cap keeps a bad publisher from making the decoder allocate
// without bound.
const MaxMessageSize = 1 << 20

// ErrTestEvent is returned for the s3:TestEvent message a server sends when a
// notification target is set up (versitygw at every start). It carries no
// object: acknowledge it and move on.
var ErrTestEvent = errors.New("s3event: s3:TestEvent message, no records")

// minioSource is MinIO's eventSource; its record keys are QueryEscaped.
const minioSource = "minio:s3"

// plainObject is events.S3Object without its UnmarshalJSON, which
// QueryUnescapes every key: that turns versitygw's raw "a+b" into "a b" and
// rejects a raw "100%.mp4" outright. We unescape ourselves, per server.
type plainObject events.S3Object

type wireEntity struct {
	events.S3Entity
	Object plainObject `json:"object"` // shadows S3Entity.Object
}

type wireRecord struct {
	events.S3EventRecord
	S3 wireEntity `json:"s3"` // shadows S3EventRecord.S3
	// Shadowed and decoded leniently: versitygw sends
	// restoreEventData.lifecycleRestorationExpiryTime as "", which time.Time
	// refuses, failing the whole message over a field nobody here reads.
	GlacierEventData json.RawMessage `json:"glacierEventData"`
}

type wireEvent struct {
	Records []wireRecord `json:"Records"`
	Event   string       `json:"Event"` // set only on s3:TestEvent messages
}

// Decode parses one notification message. In every record S3.Object.Key and
// S3.Object.URLDecodedKey both hold the real object key: MinIO's
// QueryEscaped keys are unescaped, versitygw's raw keys are kept as sent
// (so "+" stays "+").
//
// It returns ErrTestEvent for a test message; any other error means the
// message is malformed and will never decode, so redelivering it is useless.
// Every record in a successful result has a bucket name, key and event name.
func Decode(msg []byte) (events.S3Event, error) {
	if len(msg) > MaxMessageSize {
		return events.S3Event{}, fmt.Errorf("s3event: message is %d bytes, over the %d-byte limit", len(msg), MaxMessageSize)
	}
	if len(bytes.TrimSpace(msg)) == 0 {
		return events.S3Event{}, errors.New("s3event: empty message")
	}
	var w wireEvent
	if err := json.Unmarshal(msg, &w); err != nil {
		return events.S3Event{}, fmt.Errorf("s3event: not an S3 notification: %w", err)
	}
	if w.Event == "s3:TestEvent" {
		return events.S3Event{}, ErrTestEvent
	}
	if len(w.Records) == 0 {
		return events.S3Event{}, errors.New("s3event: message has no Records")
	}
	out := events.S3Event{Records: make([]events.S3EventRecord, len(w.Records))}
	for i, wr := range w.Records {
		rec, err := wr.record()
		if err != nil {
			return events.S3Event{}, fmt.Errorf("s3event: record %d: %w", i, err)
		}
		out.Records[i] = rec
	}
	return out, nil
}

func (w wireRecord) record() (events.S3EventRecord, error) {
	rec := w.S3EventRecord
	rec.S3 = w.S3.S3Entity
	rec.S3.Object = events.S3Object(w.S3.Object)
	rec.GlacierEventData = nil
	if len(w.GlacierEventData) > 0 {
		var g events.S3GlacierEventData
		if json.Unmarshal(w.GlacierEventData, &g) == nil {
			rec.GlacierEventData = &g
		}
	}

	if rec.S3.Bucket.Name == "" {
		return rec, errors.New("no s3.bucket.name")
	}
	if rec.EventName == "" {
		return rec, errors.New("no eventName")
	}
	key := rec.S3.Object.Key
	if key == "" {
		return rec, errors.New("no s3.object.key")
	}
	// Only MinIO escapes. versitygw also says "aws:s3" but sends raw keys,
	// and it is the only "aws:s3" server that publishes to NATS.
	if rec.EventSource == minioSource {
		k, err := url.QueryUnescape(key)
		if err != nil {
			return rec, fmt.Errorf("minio key %q is not query-escaped: %w", key, err)
		}
		key = k
	}
	if !utf8.ValidString(key) {
		return rec, fmt.Errorf("key %q is not valid UTF-8", key)
	}
	rec.S3.Object.Key = key
	rec.S3.Object.URLDecodedKey = key
	return rec, nil
}

// Object is one created or removed object: the part of a record callers act
// on. Size, VersionID and ETag are as the server reported them, which is not
// always the truth (see the package doc); HEAD the object for that.
type Object struct {
	Bucket    string
	Key       string // unescaped, ready for S3 calls
	EventName string // e.g. "s3:ObjectCreated:Put"
	ETag      string // without quotes (versitygw quotes it, MinIO doesn't)
	Size      int64
	VersionID string
	Time      time.Time
	Source    string // eventSource: "minio:s3" or "aws:s3" (versitygw)
}

// Objects decodes msg like Decode and flattens its records, in message order.
func Objects(msg []byte) ([]Object, error) {
	ev, err := Decode(msg)
	if err != nil {
		return nil, err
	}
	objs := make([]Object, len(ev.Records))
	for i, r := range ev.Records {
		objs[i] = Object{
			Bucket:    r.S3.Bucket.Name,
			Key:       r.S3.Object.Key,
			EventName: r.EventName,
			ETag:      unquote(r.S3.Object.ETag),
			Size:      r.S3.Object.Size,
			VersionID: r.S3.Object.VersionID,
			Time:      r.EventTime,
			Source:    r.EventSource,
		}
	}
	return objs, nil
}

// Created reports whether the event put a new object version (Put, Post,
// Copy or CompleteMultipartUpload).
func (o Object) Created() bool { return strings.HasPrefix(o.EventName, "s3:ObjectCreated:") }

// Removed reports whether the event deleted an object or added a delete
// marker.
func (o Object) Removed() bool { return strings.HasPrefix(o.EventName, "s3:ObjectRemoved:") }

func unquote(etag string) string {
	if len(etag) >= 2 && etag[0] == '"' && etag[len(etag)-1] == '"' {
		return etag[1 : len(etag)-1]
	}
	return etag
}
