package server

import (
	"net/http"
	"net/url"
	"regexp"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/pulse/protocol"
)

// Pairing is the answer of POST /api/pairings.
type Pairing struct {
	ArtifactID string `json:"artifactId"`
	Link       string `json:"link"`      // pulsecam://?v=1&artifactId=…&server=…&token=…
	HTTPSLink  string `json:"httpsLink"` // the same parameters for Pulse 2.1+, in the fragment
	Server     string `json:"server"`
	ExpiresAt  int64  `json:"expiresAt"` // unix seconds
}

// OpenLinkBase is the https form of a pairing link that Pulse 2.1+ opens
// (its parameters travel in the fragment, which no server sees).
const OpenLinkBase = "https://mieweb.github.io/pulse/open#"

var hostRe = regexp.MustCompile(`^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// serverURL is the base URL the phone uploads to: PAIRING_PUBLIC_URL, or the
// origin the request came through (the public origin and nginx set
// X-Forwarded-Host and -Proto), plus /pulsevault.
func (s *Server) serverURL(r *http.Request) string {
	if s.o.Config.PublicURL != "" {
		return s.o.Config.PublicURL + Prefix
	}
	host, proto := r.Host, "http"
	if h := r.Header.Get("X-Forwarded-Host"); hostRe.MatchString(h) {
		host = h
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		proto = p
	} else if r.TLS != nil {
		proto = "https"
	}
	return proto + "://" + host + Prefix
}

// pairings mints a pairing for the signed-in caller: a fresh artifact id
// and a capability token naming the caller as owner.
func (s *Server) pairings(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		protocol.WriteError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	claims, err := s.o.JWT.FromRequest(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pulsevault"`)
		protocol.WriteError(w, http.StatusUnauthorized, "sign in first: POST /api/pairings needs your bearer token")
		return
	}
	artifact := uuid.NewString()
	tok, c, err := s.o.Signer.Sign(artifact, claims.Subject, "", s.o.Now(), s.o.Config.PairingTTL)
	if err != nil {
		s.o.Log.Error("pulse: pairing not signed", "err", err.Error())
		protocol.WriteError(w, http.StatusServiceUnavailable, "the server cannot sign pairing links right now: retry in a minute")
		return
	}
	if err := s.audit(r.Context(), event.Event{Actor: claims.Subject, Action: event.PairingCreated, Object: artifact, Outcome: event.Success}); err != nil {
		protocol.WriteError(w, http.StatusServiceUnavailable, "the audit log is unavailable, so no pairing was made: retry in a minute")
		return
	}
	srv := s.serverURL(r)
	q := url.Values{}
	q.Set("v", "1")
	q.Set("artifactId", artifact)
	q.Set("server", srv)
	q.Set("token", tok)
	// Pulse 2.0 reads uploadUnit from the link too; 2.1+ ignores it.
	q.Set("uploadUnit", "merged")
	params := q.Encode()
	writeJSON(w, http.StatusCreated, Pairing{ArtifactID: artifact, Link: "pulsecam://?" + params, HTTPSLink: OpenLinkBase + params,
		Server: srv, ExpiresAt: c.ExpiresAt().Unix()})
}
