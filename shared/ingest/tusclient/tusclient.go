// Package tusclient is the client side of tus 1.0 (core + creation +
// termination) over net/http, with resumption across process restarts
// through a state file. No maintained Go tus client resolves on the module
// proxy (github.com/bdragon300/tusgo does not), hence this package.
package tusclient

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the tus protocol version spoken.
const Version = "1.0.0"

// DefaultChunkSize is the body size of one PATCH. Larger chunks mean fewer
// round trips; a lost connection re-sends at most what the server had not
// stored yet.
const DefaultChunkSize = 32 << 20

// ErrUnauthorized means the server refused the token (401/403).
var ErrUnauthorized = errors.New("tus: the server refused the token (401): check --token")

// ErrTooLarge means the file is over the server's limit (413).
var ErrTooLarge = errors.New("tus: the file is larger than the server accepts (413)")

// Client uploads files to one tus creation endpoint.
type Client struct {
	Endpoint string // creation URL, e.g. http://127.0.0.1:8080/function/upload/
	Token    string // bearer token sent on every request
	// Tokens, when set, gives the bearer token of each request instead of
	// Token: a signed-in CLI's short access tokens are refreshed under a
	// long upload.
	Tokens    func(context.Context) (string, error)
	HTTP      *http.Client // default http.DefaultClient
	ChunkSize int64        // default DefaultChunkSize
	Retries   int          // attempts per chunk after a network error; default 5
	State     *State       // where resumable uploads are remembered; nil: none
	// Progress, if set, is called with the number of bytes the server has
	// (and while a chunk is sent, the bytes sent so far).
	Progress func(offset int64)
}

// Upload sends the file at path with the given tus metadata and returns the
// upload's URL. If State remembers an unfinished upload of the same file
// (same path, size and modification time) to the same endpoint, it resumes
// at the offset the server reports.
func (c *Client) Upload(ctx context.Context, path string, metadata map[string]string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("tus: %s is not a regular file", path)
	}
	size := fi.Size()
	fp := fingerprint(c.Endpoint, path, fi)

	var loc string
	offset := int64(-1)
	if c.State != nil {
		if u := c.State.Get(fp); u != "" {
			if off, err := c.offset(ctx, u); err == nil {
				loc, offset = u, off
			} else if errors.Is(err, ErrUnauthorized) {
				return "", err
			}
		}
	}
	if loc == "" {
		if loc, err = c.create(ctx, size, metadata); err != nil {
			return "", err
		}
		offset = 0
		if c.State != nil {
			if err := c.State.Put(fp, loc); err != nil {
				return "", err
			}
		}
	}
	if err := c.send(ctx, f, loc, offset, size); err != nil {
		return loc, err
	}
	if c.State != nil {
		if err := c.State.Delete(fp); err != nil {
			return loc, err
		}
	}
	return loc, nil
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) request(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Tus-Resumable", Version)
	if c.Tokens != nil {
		tok, err := c.Tokens(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	} else if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// create POSTs a new upload and returns its absolute URL.
func (c *Client) create(ctx context.Context, size int64, metadata map[string]string) (string, error) {
	req, err := c.request(ctx, http.MethodPost, c.Endpoint, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	if m := EncodeMetadata(metadata); m != "" {
		req.Header.Set("Upload-Metadata", m)
	}
	res, err := c.http().Do(req)
	if err != nil {
		return "", fmt.Errorf("tus: create: %w", err)
	}
	defer drain(res)
	if err := statusErr("create", res, http.StatusCreated); err != nil {
		return "", err
	}
	loc := res.Header.Get("Location")
	if loc == "" {
		return "", errors.New("tus: create: the server sent no Location")
	}
	base, err := url.Parse(c.Endpoint)
	if err != nil {
		return "", err
	}
	ref, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("tus: create: bad Location: %w", err)
	}
	return base.ResolveReference(ref).String(), nil
}

// offset asks the server how much of the upload it has (HEAD).
func (c *Client) offset(ctx context.Context, u string) (int64, error) {
	req, err := c.request(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Cache-Control", "no-store")
	res, err := c.http().Do(req)
	if err != nil {
		return 0, fmt.Errorf("tus: offset: %w", err)
	}
	defer drain(res)
	if err := statusErr("offset", res, http.StatusOK, http.StatusNoContent); err != nil {
		return 0, err
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}

// send PATCHes the file from offset in chunks, re-reading the offset from
// the server after a failure.
func (c *Client) send(ctx context.Context, f *os.File, u string, offset, size int64) error {
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	retries := c.Retries
	if retries <= 0 {
		retries = 5
	}
	c.report(offset)
	failures := 0
	for offset < size {
		n := min(chunk, size-offset)
		next, err := c.patch(ctx, f, u, offset, n)
		if err == nil {
			offset, failures = next, 0
			c.report(offset)
			continue
		}
		if ctx.Err() != nil || errors.Is(err, ErrUnauthorized) || failures >= retries || isFinal(err) {
			return err
		}
		failures++
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
		if off, herr := c.offset(ctx, u); herr == nil {
			offset = off
		}
	}
	return nil
}

func (c *Client) patch(ctx context.Context, f *os.File, u string, offset, n int64) (int64, error) {
	body := &counting{r: io.NewSectionReader(f, offset, n), base: offset, report: c.report}
	req, err := c.request(ctx, http.MethodPatch, u, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	res, err := c.http().Do(req)
	if err != nil {
		return 0, fmt.Errorf("tus: patch: %w", err)
	}
	defer drain(res)
	if err := statusErr("patch", res, http.StatusNoContent, http.StatusOK); err != nil {
		return 0, err
	}
	next, err := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || next < offset {
		return 0, fmt.Errorf("tus: patch: bad Upload-Offset %q", res.Header.Get("Upload-Offset"))
	}
	return next, nil
}

// Terminate deletes an upload (tus termination).
func (c *Client) Terminate(ctx context.Context, u string) error {
	req, err := c.request(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	res, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("tus: terminate: %w", err)
	}
	defer drain(res)
	return statusErr("terminate", res, http.StatusNoContent)
}

func (c *Client) report(n int64) {
	if c.Progress != nil {
		c.Progress(n)
	}
}

// StatusError is an unexpected HTTP answer.
type StatusError struct {
	Op   string
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("tus: %s: HTTP %d: %s", e.Op, e.Code, e.Body)
}

// isFinal tells answers a retry cannot fix.
func isFinal(err error) bool {
	var se *StatusError
	if errors.Is(err, ErrTooLarge) {
		return true
	}
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 && se.Code != http.StatusConflict &&
		se.Code != http.StatusRequestTimeout && se.Code != http.StatusTooManyRequests && se.Code != 423
}

func statusErr(op string, res *http.Response, ok ...int) error {
	for _, c := range ok {
		if res.StatusCode == c {
			return nil
		}
	}
	switch res.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	return &StatusError{Op: op, Code: res.StatusCode, Body: strings.TrimSpace(string(b))}
}

func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

// counting reports progress while a chunk's body is read.
type counting struct {
	r      io.Reader
	base   int64
	n      int64
	report func(int64)
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.report(c.base + c.n)
	return n, err
}

// EncodeMetadata renders tus Upload-Metadata: "key base64(value)" pairs,
// comma-separated, keys sorted. Keys with spaces or commas are dropped
// (the protocol forbids them).
func EncodeMetadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "" && !strings.ContainsAny(k, " ,") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + base64.StdEncoding.EncodeToString([]byte(m[k]))
	}
	return strings.Join(parts, ",")
}

// fingerprint identifies one version of one file sent to one endpoint,
// without keeping the path itself (a file name may be PHI).
func fingerprint(endpoint, path string, fi os.FileInfo) string {
	abs, _ := filepath.Abs(path)
	h := sha256.Sum256([]byte(endpoint + "\x00" + abs + "\x00" + strconv.FormatInt(fi.Size(), 10) + "\x00" + fi.ModTime().UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(h[:])
}

// State remembers unfinished uploads in a JSON file (fingerprint → URL),
// written atomically after every change.
type State struct {
	path string
	mu   sync.Mutex
}

// OpenState uses the file at path (created on first write).
func OpenState(path string) *State { return &State{path: path} }

// DefaultStatePath is $XDG_STATE_HOME/pulsevault/uploads.json, else
// ~/.local/state/pulsevault/uploads.json.
func DefaultStatePath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "pulsevault", "uploads.json")
}

func (s *State) load() map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(s.path)
	if err == nil {
		_ = json.Unmarshal(b, &m) // a damaged file only loses resumption
	}
	return m
}

func (s *State) save(m map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("tus: state file: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("tus: state file: %w", err)
	}
	return os.Rename(tmp, s.path)
}

// Get returns the upload URL remembered for fp.
func (s *State) Get(fp string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()[fp]
}

// Put remembers u for fp.
func (s *State) Put(fp, u string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.load()
	m[fp] = u
	return s.save(m)
}

// Delete forgets fp.
func (s *State) Delete(fp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.load()
	if _, ok := m[fp]; !ok {
		return nil
	}
	delete(m, fp)
	return s.save(m)
}
