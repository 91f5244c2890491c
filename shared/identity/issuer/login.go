package issuer

import (
	"context"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mieweb/pulsevault/shared/audit/event"
	"github.com/mieweb/pulsevault/shared/identity/users"
)

// page is the one plain, accessible form of the provider: labelled
// fields, an error a person understands (announced by screen readers),
// readable on a phone, no script.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – PulseVault</title>
<style>
body{font:1.1rem/1.5 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#111}
main{max-width:26rem;margin:2rem auto;background:#fff;padding:1.5rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin-top:0}
label{display:block;font-weight:600;margin-top:1rem}
input{box-sizing:border-box;width:100%;font-size:1.1rem;padding:.6rem;margin-top:.3rem;border:1px solid #555;border-radius:.3rem}
input:focus,button:focus{outline:3px solid #1a5fb4;outline-offset:2px}
button{margin-top:1.5rem;width:100%;font-size:1.1rem;padding:.7rem;border:0;border-radius:.3rem;background:#1a5fb4;color:#fff}
.error{background:#fde8e8;border-left:4px solid #b00020;padding:.6rem;margin:1rem 0}
.ok{background:#e6f4ea;border-left:4px solid #1e7e34;padding:.6rem;margin:1rem 0}
</style></head>
<body><main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert" id="error">{{.Error}}</p>{{end}}
{{if .Done}}<p class="ok" role="status">{{.Done}}</p>{{else}}
<form method="post" action="{{.Action}}"{{if .Error}} aria-describedby="error"{{end}}>
{{if .RequestID}}<input type="hidden" name="authRequestID" value="{{.RequestID}}">{{end}}
{{if .Device}}<label for="user_code">Code shown by the device</label>
<input id="user_code" name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" required>{{end}}
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required{{if not .Device}} autofocus{{end}}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{{if .Device}}Sign in and allow this device{{else}}Sign in{{end}}</button>
</form>{{end}}
</main></body></html>`))

type pageData struct {
	Title, Error, Done, Action, RequestID, UserCode string
	Device                                          bool
}

func (i *Issuer) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	// form-action also governs the redirects after a post: the sign-in
	// ends at a client's registered redirect URI, so those origins are listed.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"+i.formTargets+"; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = page.Execute(w, d)
}

// Messages a person can act on. Unknown user and wrong password read the
// same, so the page does not reveal who has an account.
const (
	msgWrong     = "The user name or password is not right. Check them and try again."
	msgDisabled  = "This account is disabled. Ask your administrator to enable it."
	msgThrottled = "Too many attempts. Wait 15 minutes, then try again."
	msgExpired   = "This sign-in link has expired. Go back to the application and start again."
	msgNoCode    = "That code is not known or has expired. Check the code on your device, or start again there."
	msgBusy      = "Sign-in is not available right now. Try again in a minute."
)

func (i *Issuer) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	d := pageData{Title: "Sign in", Action: i.prefix + "/login", RequestID: id}
	if _, _, err := (&storage{iss: i, st: i.st}).authRequest(r.Context(), id); err != nil {
		d.Error, d.Done = msgExpired, " "
		i.render(w, http.StatusBadRequest, d)
		return
	}
	i.render(w, http.StatusOK, d)
}

func (i *Issuer) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	id := r.PostFormValue("authRequestID")
	d := pageData{Title: "Sign in", Action: i.prefix + "/login", RequestID: id}
	st := &storage{iss: i, st: i.st}
	if _, _, err := st.authRequest(r.Context(), id); err != nil {
		d.Error, d.Done = msgExpired, " "
		i.render(w, http.StatusBadRequest, d)
		return
	}
	u, status, msg := i.authenticate(r)
	if msg != "" {
		d.Error = msg
		i.render(w, status, d)
		return
	}
	if err := st.completeLogin(r.Context(), id, u.ID); err != nil {
		d.Error, d.Done = msgExpired, " "
		i.render(w, http.StatusBadRequest, d)
		return
	}
	http.Redirect(w, r, i.URL()+"/authorize/callback?id="+id, http.StatusFound)
}

func (i *Issuer) devicePage(w http.ResponseWriter, r *http.Request) {
	i.render(w, http.StatusOK, pageData{Title: "Allow a device", Action: i.prefix + "/device", Device: true,
		UserCode: normalizeUserCode(r.URL.Query().Get("user_code"))})
}

func (i *Issuer) deviceSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	code := normalizeUserCode(r.PostFormValue("user_code"))
	d := pageData{Title: "Allow a device", Action: i.prefix + "/device", Device: true, UserCode: code}
	st := &storage{iss: i, st: i.st}
	if _, _, _, err := st.deviceByUserCode(r.Context(), code); code == "" || err != nil {
		d.Error = msgNoCode
		i.render(w, http.StatusBadRequest, d)
		return
	}
	u, status, msg := i.authenticate(r)
	if msg != "" {
		d.Error = msg
		i.render(w, status, d)
		return
	}
	if err := st.completeDevice(r.Context(), code, u.ID); err != nil {
		d.Error = msgNoCode
		i.render(w, http.StatusBadRequest, d)
		return
	}
	i.render(w, http.StatusOK, pageData{Title: "Device allowed", Done: "You are signed in on your device as " + u.Name + ". You can close this page."})
}

func (i *Issuer) signedOut(w http.ResponseWriter, r *http.Request) {
	i.render(w, http.StatusOK, pageData{Title: "Signed out", Done: "You are signed out of PulseVault."})
}

// normalizeUserCode accepts what a person types: lower case, spaces or a dash.
func normalizeUserCode(s string) string {
	s = strings.ToUpper(strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, s))
	if len(s) > 16 || strings.ContainsFunc(s, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return ""
	}
	return s
}

// authenticate checks the form's user name and password with throttling;
// a non-empty message is the refusal to show. The typed name is never
// logged nor audited: the actor of a refusal is the user id only when an
// account of that id exists.
func (i *Issuer) authenticate(r *http.Request) (users.User, int, string) {
	name := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	addr := clientAddr(r, i.o.TrustedProxies)
	ctx := r.Context()
	if !i.throttle.allow(name, addr) {
		i.fail(ctx, name, "throttled")
		return users.User{}, http.StatusTooManyRequests, msgThrottled
	}
	u, reason, err := i.users.Check(name, password)
	switch {
	case err == nil:
		i.throttle.succeeded(name)
		i.audit(ctx, event.Event{Actor: u.ID, Action: event.LoginSucceeded, Outcome: event.Success})
		return u, 0, ""
	case reason == "":
		i.log.Error("users file unreadable", "error", err)
		return users.User{}, http.StatusServiceUnavailable, msgBusy
	}
	i.throttle.failed(name, addr)
	i.fail(ctx, name, reason)
	if reason == users.ReasonDisabled {
		return users.User{}, http.StatusForbidden, msgDisabled
	}
	return users.User{}, http.StatusUnauthorized, msgWrong
}

func (i *Issuer) fail(ctx context.Context, name, reason string) {
	actor := "service:identity"
	if reason != users.ReasonUnknown {
		if _, ok, _ := i.users.Get(name); ok {
			actor = name // an existing account's id, not free text
		}
	}
	i.log.Info("sign-in refused", "reason", reason)
	i.audit(ctx, event.Event{Actor: actor, Action: event.LoginFailed, Outcome: event.Denied, Reason: reason})
}

// clientAddr is the address throttling counts: the peer, or — when the
// peer is a trusted proxy (nginx) — the rightmost X-Forwarded-For entry
// that is not one, which the proxy appended and the caller could not
// choose. Behind an untrusted peer the header is the caller's to write and
// is ignored.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if !isTrusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for k := len(hops) - 1; k >= 0; k-- {
		h := strings.TrimSpace(hops[k])
		if h == "" {
			continue
		}
		if !isTrusted(h) {
			if a, err := netip.ParseAddr(h); err == nil {
				return a.String()
			}
			return host
		}
	}
	return host
}

// throttle counts failed sign-ins per account and per client address in
// a sliding window (per replica: a sign-in storm on one replica is slowed
// there, and a person's retry on another is the same few tries).
type throttle struct {
	window            time.Duration
	perAccount, perIP int
	mu                sync.Mutex
	fails             map[string][]time.Time
}

func newThrottle(window time.Duration, perAccount, perIP int) *throttle {
	return &throttle{window: window, perAccount: perAccount, perIP: perIP, fails: map[string][]time.Time{}}
}

func (t *throttle) recent(key string, now time.Time) []time.Time {
	list := t.fails[key]
	n := 0
	for _, at := range list {
		if now.Sub(at) < t.window {
			list[n] = at
			n++
		}
	}
	if n == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = list[:n]
	return list[:n]
}

func (t *throttle) allow(account, addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	return len(t.recent("u:"+account, now)) < t.perAccount && len(t.recent("a:"+addr, now)) < t.perIP
}

func (t *throttle) failed(account, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.fails["u:"+account] = append(t.recent("u:"+account, now), now)
	t.fails["a:"+addr] = append(t.recent("a:"+addr, now), now)
	if len(t.fails) > 100000 { // bound memory under a spray of names
		t.fails = map[string][]time.Time{}
	}
}

func (t *throttle) succeeded(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, "u:"+account)
}
