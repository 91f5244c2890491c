package encode

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// What the handler answers before it touches the worker: the connector
// dead-letters a 400 at once and must never get one for a good job.
func TestHandlerRefusesBadRequests(t *testing.T) {
	h := &Handler{Name: "transcode"}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodGet, "/", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "/elsewhere", "{}", http.StatusNotFound},
		{http.MethodPost, "/", "not json", http.StatusBadRequest},
		{http.MethodPost, "/", `{"video":"v"}`, http.StatusBadRequest},
		{http.MethodPost, "/", `{"video":"v","rendition":"240p","pad":"` + strings.Repeat("x", 64<<10) + `"}`, http.StatusBadRequest},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
		if w.Code != tc.want || !strings.Contains(w.Body.String(), `"function":"transcode"`) {
			t.Errorf("%s %s %.30q: %d %s, want %d", tc.method, tc.path, tc.body, w.Code, w.Body, tc.want)
		}
	}
}
