package chain

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Events never come over HTTP: any other route says where they come from.
func TestServeHTTPOtherRoutes(t *testing.T) {
	var c *Chain
	for _, r := range []*http.Request{httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")), httptest.NewRequest(http.MethodGet, "/x", nil)} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), "JetStream") || w.Header().Get("Allow") == "" {
			t.Errorf("%s %s: %d %s", r.Method, r.URL.Path, w.Code, w.Body)
		}
	}
}
