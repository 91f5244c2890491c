// Package echo is a diagnostic function for tests and operators. It answers
// with a JSON description of the request it got (method, path, query, a few
// routing headers, body size) and of the process that served it (PID, the
// names of the secrets it can see, ECHO_* environment variables), and can be
// told to fail or to be slow:
//
//   - X-Echo-Status: NNN, or a JSON body {"status": NNN}, sets the status;
//   - X-Echo-Sleep-Ms: N waits N milliseconds (at most 10 s) before answering.
//
// It never echoes the body, Authorization or cookies, nor secret values.
package echo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mieweb/pulsevault/shared/platform/fnrun"
	"github.com/mieweb/pulsevault/shared/platform/secrets"
	"github.com/mieweb/pulsevault/shared/topology"
)

// Name is the function's name in stack.yml.
const Name = "echo"

// Function is echo, for `pulsevault fn echo`: it needs nothing built.
var Function = fnrun.Function(Name, func(*fnrun.Deps) (http.Handler, error) {
	return http.HandlerFunc(Handle), nil
})

// MaxSleep caps X-Echo-Sleep-Ms.
const MaxSleep = 10 * time.Second

// echoedHeaders are the request headers the response repeats.
var echoedHeaders = []string{topology.HeaderTopic, "X-Call-Id", "Content-Type", "X-Callback-Url", "X-Request-Id", "Traceparent"}

// peek is how much of the body is kept to look for {"status": NNN}.
const peek = 64 << 10

// Response is what echo answers.
type Response struct {
	Function  string            `json:"function"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Query     string            `json:"query,omitempty"`
	Headers   map[string]string `json:"headers"`
	BodyBytes int64             `json:"bodyBytes"`
	PID       int               `json:"pid"`
	Env       map[string]string `json:"env,omitempty"`
	Secrets   Secrets           `json:"secrets"`
}

// Secrets describes the secrets directory the function sees: names only.
type Secrets struct {
	Dir   string   `json:"dir"`
	Names []string `json:"names"`
}

// Handle echoes the request.
func Handle(w http.ResponseWriter, r *http.Request) {
	var head bytes.Buffer
	n, err := io.Copy(&head, io.LimitReader(r.Body, peek))
	if err == nil {
		var rest int64
		rest, err = io.Copy(io.Discard, r.Body)
		n += rest
	}
	if err != nil {
		fnrun.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "could not read the request body", "function": Name})
		return
	}

	status := http.StatusOK
	if s := r.Header.Get("X-Echo-Status"); s != "" {
		status = parseStatus(s, status)
	} else if n > 0 && n <= peek {
		var b struct {
			Status int `json:"status"`
		}
		if json.Unmarshal(head.Bytes(), &b) == nil && b.Status != 0 {
			status = parseStatus(strconv.Itoa(b.Status), status)
		}
	}

	if ms, err := strconv.Atoi(r.Header.Get("X-Echo-Sleep-Ms")); err == nil && ms > 0 {
		d := min(time.Duration(ms)*time.Millisecond, MaxSleep)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}

	resp := Response{
		Function:  Name,
		Method:    r.Method,
		Path:      r.URL.Path,
		Query:     r.URL.RawQuery,
		Headers:   map[string]string{},
		BodyBytes: n,
		PID:       os.Getpid(),
		Secrets:   listSecrets(),
	}
	for _, h := range echoedHeaders {
		if v := r.Header.Get(h); v != "" {
			resp.Headers[h] = v
		}
	}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "ECHO_") {
			if resp.Env == nil {
				resp.Env = map[string]string{}
			}
			resp.Env[k] = v
		}
	}
	fnrun.WriteJSON(w, status, resp)
}

// parseStatus accepts 200–599; anything else keeps def.
func parseStatus(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 200 || n > 599 {
		return def
	}
	return n
}

func listSecrets() Secrets {
	s := Secrets{Dir: secrets.Dir(), Names: []string{}}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return s
	}
	for _, e := range ents {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			s.Names = append(s.Names, e.Name())
		}
	}
	sort.Strings(s.Names)
	return s
}
