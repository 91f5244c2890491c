package finalize

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Routing answers that need no finalizer behind them.
func TestServeHTTPRouting(t *testing.T) {
	var f *Finalizer
	w := httptest.NewRecorder()
	f.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	f.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/elsewhere", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("POST /elsewhere: %d", w.Code)
	}
}
