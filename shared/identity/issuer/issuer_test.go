package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/bus"
	"github.com/mieweb/pulsevault/shared/identity/users"
	"github.com/mieweb/pulsevault/shared/localstack"
	"github.com/mieweb/pulsevault/shared/topology"
)

const (
	vitalsID  = "pulsevault-vitals"
	cliID     = "pulsevault-cli"
	apiAud    = "pulsevault-api"
	password  = "correct horse battery"
	password2 = "another long password"
)

type rig struct {
	t        *testing.T
	iss      *Issuer
	url      string // issuer
	redirect string
	store    *users.Store
	bus      *bus.Bus
}

// newRig runs the provider on a real embedded NATS, under /oidc of an
// HTTP server, with users nurse-1 (viewer), admin-1 and gone-1 (disabled).
func newRig(t *testing.T, tweak func(*Options)) *rig {
	t.Helper()
	dir := t.TempDir()
	ns, err := localstack.StartNATS(localstack.NATSOptions{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	b, err := bus.Connect(ns.URL(), "issuer-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if _, err := b.EnsureStream(context.Background(), bus.StreamConfig{Name: topology.StreamAudit, Subjects: []string{topology.SubjectAudit + ".>"}}); err != nil {
		t.Fatal(err)
	}
	store := users.Open(filepath.Join(dir, "users.yaml"))
	for _, u := range []users.User{{ID: "nurse-1", Name: "Nurse One", Roles: []string{"pulsevault:viewer"}},
		{ID: "admin-1", Name: "Admin One", Roles: []string{"pulsevault:admin"}}, {ID: "gone-1", Name: "Gone"}} {
		if err := store.Add(u, password); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.SetDisabled("gone-1", true); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	r := &rig{t: t, url: srv.URL + "/oidc", redirect: srv.URL + "/auth/callback", store: store, bus: b}
	o := Options{Issuer: r.url, Users: store, JS: b.JetStream(), Audit: event.NewPublisher(b, "identity"),
		VitalsClientID: vitalsID, VitalsRedirectURIs: []string{r.redirect}, VitalsLogoutURIs: []string{srv.URL + "/"},
		CLIClientID: cliID, APIAudience: apiAud, AllowInsecure: true}
	if tweak != nil {
		tweak(&o)
	}
	if r.iss, err = New(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	h = r.iss.Handler()
	return r
}

func (r *rig) oauth(clientID string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, RedirectURL: r.redirect, Scopes: []string{"openid", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: r.url + "/authorize", TokenURL: r.url + "/oauth/token",
			DeviceAuthURL: r.url + "/device_authorization", AuthStyle: oauth2.AuthStyleInParams}}
}

// browser is a client with a cookie jar that stops at the redirect URI.
func (r *rig) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), r.redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// authorize opens the authorization URL and returns the login page's
// auth request id (or the response when there is no login page).
func (r *rig) authorize(c *http.Client, authURL string) (string, *http.Response, string) {
	r.t.Helper()
	resp, err := c.Get(authURL)
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.Request.URL.Query().Get("authRequestID"), resp, string(body)
}

// login posts the form; it returns the final response and its body.
func (r *rig) login(c *http.Client, reqID, user, pass string) (*http.Response, string) {
	r.t.Helper()
	resp, err := c.PostForm(r.url+"/login", url.Values{"authRequestID": {reqID}, "username": {user}, "password": {pass}})
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// codeFlow signs user in with PKCE S256 and returns the code and verifier.
func (r *rig) codeFlow(user, pass string) (code, verifier string) {
	r.t.Helper()
	verifier = oauth2.GenerateVerifier()
	c := r.browser()
	id, resp, body := r.authorize(c, r.oauth(vitalsID).AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)))
	if id == "" || resp.StatusCode != 200 || !strings.Contains(body, `<label for="password">Password</label>`) {
		r.t.Fatalf("no login page: %d %s", resp.StatusCode, body)
	}
	resp, body = r.login(c, id, user, pass)
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), r.redirect) {
		r.t.Fatalf("login of %s did not redirect to the client: %d %s", user, resp.StatusCode, body)
	}
	if loc.Query().Get("state") != "st-1" {
		r.t.Fatalf("state lost: %s", loc)
	}
	return loc.Query().Get("code"), verifier
}

func (r *rig) verifier() *auth.Verifier {
	v, err := auth.New(auth.Options{Discover: true, Issuer: r.url, Audience: apiAud, Leeway: time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

// auditEvents reads every audit event published so far.
func (r *rig) auditEvents() []event.Event {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := r.bus.JetStream().OrderedConsumer(ctx, topology.StreamAudit, jetstream.OrderedConsumerConfig{})
	if err != nil {
		r.t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(1000)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []event.Event
	for m := range batch.Messages() {
		var e event.Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			r.t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// The code + PKCE flow end to end, then the API's verifier accepts the
// access token with the user's roles; refresh rotates, and reuse of a
// rotated-out token is refused and ends the session.
func TestCodeFlowAndRefreshRotation(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	code, verifier := r.codeFlow("nurse-1", password)
	tok, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("token response lacks a refresh or ID token: %+v", tok)
	}
	if ttl := time.Until(tok.Expiry); ttl > 10*time.Minute+5*time.Second || ttl < 9*time.Minute {
		t.Errorf("access token lifetime %s, want the 10 min default", ttl)
	}
	v := r.verifier()
	who, err := v.Verify(ctx, tok.AccessToken)
	if err != nil || who.Subject != "nurse-1" || !who.HasRole("pulsevault:viewer") || who.HasRole("pulsevault:admin") {
		t.Fatalf("API verifier on the access token: %+v %v", who, err)
	}

	// Replayed code: refused.
	if _, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isInvalidGrant(err) {
		t.Errorf("replayed code: %v, want invalid_grant", err)
	}

	// Rotation.
	first := tok.RefreshToken
	next, err := r.oauth(vitalsID).TokenSource(ctx, &oauth2.Token{RefreshToken: first}).Token()
	if err != nil || next.RefreshToken == "" || next.RefreshToken == first {
		t.Fatalf("refresh: %+v %v", next, err)
	}
	if _, err := v.Verify(ctx, next.AccessToken); err != nil {
		t.Fatalf("refreshed access token refused: %v", err)
	}
	// Reuse of the rotated-out token: refused, and the newer one dies with it.
	if _, err := r.oauth(vitalsID).TokenSource(ctx, &oauth2.Token{RefreshToken: first}).Token(); !isInvalidGrant(err) {
		t.Errorf("reused refresh token: %v, want invalid_grant", err)
	}
	if _, err := r.oauth(vitalsID).TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); !isInvalidGrant(err) {
		t.Errorf("the family's current token survived a reuse: %v", err)
	}

	var ok bool
	for _, e := range r.auditEvents() {
		if e.Action == event.LoginSucceeded && e.Actor == "nurse-1" {
			ok = true
		}
	}
	if !ok {
		t.Error("no login.succeeded event for nurse-1")
	}
}

func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// Each refusal of the code flow, with the message a person reads.
func TestCodeFlowRefusals(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	start := func() (*http.Client, string) {
		c := r.browser()
		id, _, _ := r.authorize(c, r.oauth(vitalsID).AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if id == "" {
			t.Fatal("no login page")
		}
		return c, id
	}
	for name, tc := range map[string]struct {
		user, pass string
		status     int
		msg        string
	}{
		"wrong password": {"nurse-1", "not the password!", 401, "The user name or password is not right"},
		"unknown user":   {"nobody-here", password, 401, "The user name or password is not right"},
		"disabled user":  {"gone-1", password, 403, "This account is disabled"},
	} {
		c, id := start()
		resp, body := r.login(c, id, tc.user, tc.pass)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) || !strings.Contains(body, `role="alert"`) {
			t.Errorf("%s: %d, page lacks %q", name, resp.StatusCode, tc.msg)
		}
	}
	for _, e := range r.auditEvents() {
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), "nobody-here") || strings.Contains(string(raw), "not the password") {
			t.Errorf("an audit event holds the typed name or password: %s", raw)
		}
	}
	reasons := map[string]bool{}
	for _, e := range r.auditEvents() {
		if e.Action == event.LoginFailed {
			reasons[e.Reason] = true
		}
	}
	for _, want := range []string{users.ReasonPassword, users.ReasonUnknown, users.ReasonDisabled} {
		if !reasons[want] {
			t.Errorf("no login.failed event with reason %s (got %v)", want, reasons)
		}
	}

	// Wrong PKCE verifier.
	code, _ := r.codeFlow("nurse-1", password)
	if _, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); !isInvalidGrant(err) {
		t.Errorf("wrong PKCE verifier: %v, want invalid_grant", err)
	}
	// Plain PKCE, and none at all: refused at /authorize.
	for name, extra := range map[string][]oauth2.AuthCodeOption{
		"plain PKCE": {oauth2.SetAuthURLParam("code_challenge", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs"), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
		"no PKCE":    nil,
	} {
		c := r.browser()
		id, resp, _ := r.authorize(c, r.oauth(vitalsID).AuthCodeURL("s", extra...))
		loc, _ := resp.Location()
		if id != "" || loc == nil || loc.Query().Get("error") != "invalid_request" {
			t.Errorf("%s: login page %q, redirect %v; want error=invalid_request", name, id, loc)
		}
	}
	// An unregistered redirect URI: no redirect at all, an error page.
	bad := r.oauth(vitalsID)
	bad.RedirectURL = r.redirect + "/../evil"
	id, resp, _ := r.authorize(r.browser(), bad.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if id != "" || resp.StatusCode == http.StatusFound {
		t.Errorf("unregistered redirect URI reached the login page (%q) or redirected (%d)", id, resp.StatusCode)
	}
	bad.RedirectURL = "https://evil.example/cb"
	id, resp, _ = r.authorize(r.browser(), bad.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if id != "" || resp.Request.URL.Host == "evil.example" {
		t.Errorf("foreign redirect URI accepted")
	}
	// The CLI's client cannot use the code flow.
	id, _, _ = r.authorize(r.browser(), r.oauth(cliID).AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if id != "" {
		t.Error("the CLI client got a login page for the code flow")
	}
}

// Failed sign-ins are throttled per account: the sixth try is refused
// even with the right password.
func TestThrottle(t *testing.T) {
	r := newRig(t, nil)
	for i := range 6 {
		c := r.browser()
		id, _, _ := r.authorize(c, r.oauth(vitalsID).AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		pass := "wrong password " + string(rune('a'+i))
		if i == 5 {
			pass = password
		}
		resp, body := r.login(c, id, "nurse-1", pass)
		if i < 5 && resp.StatusCode != 401 {
			t.Fatalf("try %d: %d", i, resp.StatusCode)
		}
		if i == 5 && (resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many attempts")) {
			t.Fatalf("sixth try after five failures: %d", resp.StatusCode)
		}
	}
}

// Device flow: the CLI asks, a person approves on the page, the CLI gets
// tokens the API accepts; an expired device code is refused.
func TestDeviceFlow(t *testing.T) {
	// The approvals hash passwords, slow under -race on a busy machine: the
	// code being approved gets the default lifetime, the one left to
	// expire (below) a short one of its own issuer.
	r := newRig(t, nil)
	ctx := context.Background()
	cfg := r.oauth(cliID)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(da.VerificationURI, r.url+"/device") || da.UserCode == "" {
		t.Fatalf("device authorization: %+v", da)
	}
	page, err := http.Get(da.VerificationURIComplete)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(b), `for="user_code"`) {
		t.Fatalf("device page: %s", b)
	}
	approveAt := func(r *rig, code, user, pass string) (int, string) {
		resp, err := http.PostForm(r.url+"/device", url.Values{"user_code": {code}, "username": {user}, "password": {pass}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	approve := func(code, user, pass string) (int, string) { return approveAt(r, code, user, pass) }
	if st, body := approve(da.UserCode, "admin-1", "wrong password here"); st != 401 || !strings.Contains(body, "not right") {
		t.Fatalf("wrong password approved a device: %d", st)
	}
	if st, body := approve(strings.ToLower(da.UserCode[:4])+"-"+da.UserCode[4:], "admin-1", password); st != 200 || !strings.Contains(body, "Admin One") {
		t.Fatalf("approval: %d %s", st, body)
	}
	da.Interval = 1
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	who, err := r.verifier().Verify(ctx, tok.AccessToken)
	if err != nil || who.Subject != "admin-1" || !who.HasRole("pulsevault:admin") {
		t.Fatalf("device access token: %+v %v", who, err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("device flow gave no refresh token")
	}
	// The approved grant is handed out once.
	if _, err := cfg.DeviceAccessToken(ctx, da); err == nil {
		t.Error("a device code redeemed twice")
	}

	// Expired: never approved in time.
	short := newRig(t, func(o *Options) { o.DeviceTTL = 2 * time.Second })
	scfg := short.oauth(cliID)
	late, err := scfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if st, _ := approveAt(short, late.UserCode, "admin-1", password); st != 400 {
		t.Errorf("approving an expired code: %d, want 400", st)
	}
	// Asked directly: oauth2's client gives up on its own at the expiry.
	resp, err := http.PostForm(scfg.Endpoint.TokenURL, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {late.DeviceCode}, "client_id": {cliID}})
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != 400 || answer.Error != "expired_token" {
		t.Errorf("expired device code: %d %q, want 400 expired_token", resp.StatusCode, answer.Error)
	}
}

// End session revokes the user's refresh tokens at that client and is audited.
func TestEndSession(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	code, verifier := r.codeFlow("nurse-1", password)
	tok, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, _ := tok.Extra("id_token").(string)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(r.url + "/end_session?" + url.Values{"id_token_hint": {idt}, "client_id": {vitalsID},
		"post_logout_redirect_uri": {strings.TrimSuffix(r.redirect, "auth/callback")}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("end_session: %d", resp.StatusCode)
	}
	if _, err := r.oauth(vitalsID).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !isInvalidGrant(err) {
		t.Errorf("refresh token after sign-out: %v, want invalid_grant", err)
	}
	var logout bool
	for _, e := range r.auditEvents() {
		logout = logout || (e.Action == event.Logout && e.Actor == "nurse-1")
	}
	if !logout {
		t.Error("no logout event")
	}
}

// Keys rotate with overlap: a token signed by the old key still verifies
// after a new key took over, and the old key leaves the JWKS later.
func TestKeyRotation(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	now := time.Now()
	r.iss.keys.now = func() time.Time { return now }
	code, verifier := r.codeFlow("nurse-1", password)
	old, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	v := r.verifier()
	if _, err := v.Verify(ctx, old.AccessToken); err != nil {
		t.Fatal(err)
	}
	r.iss.keys.mu.Lock()
	r.iss.keys.loadedAt = time.Time{}
	r.iss.keys.mu.Unlock()
	now = now.Add(r.iss.o.KeyRotation + time.Minute)
	keys, err := r.iss.keys.current(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("after the rotation period: %d keys, %v", len(keys), err)
	}
	code, verifier = r.codeFlow("nurse-1", password)
	fresh, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, fresh.AccessToken); err != nil {
		t.Fatalf("token of the new key (the verifier must refetch the JWKS): %v", err)
	}
	if _, err := v.Verify(ctx, old.AccessToken); err != nil {
		t.Fatalf("token of the old key during the overlap: %v", err)
	}
	r.iss.keys.mu.Lock()
	r.iss.keys.loadedAt = time.Time{}
	r.iss.keys.mu.Unlock()
	now = now.Add(r.iss.o.KeyOverlap + time.Minute)
	if keys, _ := r.iss.keys.current(ctx); len(keys) != 1 || keys[0].ID == "" {
		t.Fatalf("after the overlap: %d keys, want the new one only", len(keys))
	}
}

// The throttle counts the client behind a trusted proxy, not the proxy;
// an untrusted caller's X-Forwarded-For is ignored.
func TestClientAddr(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct{ peer, xff, want string }{
		{"127.0.0.1:5000", "203.0.113.9", "203.0.113.9"},
		{"127.0.0.1:5000", "198.51.100.1, 203.0.113.9", "203.0.113.9"}, // a forged first hop is not taken
		{"127.0.0.1:5000", "", "127.0.0.1"},
		{"127.0.0.1:5000", "203.0.113.9, 127.0.0.2", "203.0.113.9"},
		{"198.51.100.7:5000", "203.0.113.9", "198.51.100.7"}, // not a proxy: header ignored
		{"127.0.0.1:5000", "garbage", "127.0.0.1"},
	} {
		r := httptest.NewRequest("POST", "/login", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := clientAddr(r, loop); got != tc.want {
			t.Errorf("peer %s, XFF %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// A refresh token works only for the client it was issued to.
func TestRefreshTokenBoundToClient(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	code, verifier := r.codeFlow("nurse-1", password)
	tok, err := r.oauth(vitalsID).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.oauth(cliID).TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("the CLI client redeemed Vitals' refresh token")
	}
}
