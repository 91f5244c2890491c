package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/testutil/testclip"
)

// TestVitalsSignIn drives Vitals in headless Chromium against `pulsevault
// dev` with its embedded OpenID provider and a 20 s access-token lifetime:
// sent to the login page, a wrong password explained, signed in, the feed
// plays; across two silent refreshes it keeps listing and playing; sign-out
// returns to the sign-in prompt, the refresh token is refused, and the last
// access token is refused by the API once it expires.
func TestVitalsSignIn(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("chromium not installed")
	}
	root, _ := filepath.Abs("..")
	vitals := filepath.Join(root, "vitals")
	buildVitals(t, vitals)
	bin := buildPulsevault(t)
	port := freePort(t)
	d := startDev(t, bin, root, port, "AUTH_HS256=off", "IDENTITY_ACCESS_TTL=20s", "AUTH_LEEWAY=2s")
	c := newCLI(t, bin)
	c.addUser(filepath.Join(d.data, "users.yaml"), "nurse-7", "pulsevault:viewer")

	// One playable video, uploaded with the console token (the dev admin).
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Seconds: 4}); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := c.run("", "upload", clip, "--token", d.token, "--endpoint", d.gateway+"/function/upload/", "--no-progress", "--wait",
		"--state", filepath.Join(t.TempDir(), "s.json")); err != nil {
		t.Fatalf("upload: %v\n%s%s", err, out, errOut)
	}

	runVitalsSignIn(t, vitals, d, d.public+"/oidc")
}

// TestVitalsSignInExternalIssuer is the same browser run with Vitals and
// the API pointed at the provider as an external issuer: `pulsevault
// issuer` in its own process on another port, as a clinic's IdP would be.
func TestVitalsSignInExternalIssuer(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("chromium not installed")
	}
	root, _ := filepath.Abs("..")
	vitals := filepath.Join(root, "vitals")
	buildVitals(t, vitals)
	bin := buildPulsevault(t)
	port := freePort(t)
	origin := "http://127.0.0.1:" + strconv.Itoa(port)
	data := t.TempDir()
	c := newCLI(t, bin)
	c.addUser(filepath.Join(data, "users.yaml"), "nurse-7", "pulsevault:viewer")
	issuer := startIssuer(t, bin, data, "IDENTITY_ACCESS_TTL=20s", "VITALS_ORIGIN="+origin)
	d := startDev(t, bin, root, port, "AUTH_HS256=off", "OIDC_ISSUER="+issuer, "AUTH_LEEWAY=2s")
	tok, err := codeFlowToken(t, issuer, origin+"/auth/callback", "nurse-7", signinPassword)
	if err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Seconds: 4}); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := c.run("", "upload", clip, "--token", tok, "--endpoint", d.gateway+"/function/upload/", "--no-progress", "--wait",
		"--state", filepath.Join(t.TempDir(), "s.json")); err != nil {
		t.Fatalf("upload: %v\n%s%s", err, out, errOut)
	}
	runVitalsSignIn(t, vitals, d, issuer)
}

// runVitalsSignIn runs e2e/signin.mjs as nurse-7 and checks its result.
func runVitalsSignIn(t *testing.T, vitals string, d *devStack, issuer string) {
	const chromium = "/usr/bin/chromium"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/signin.mjs")
	cmd.Dir = vitals
	cmd.Env = append(os.Environ(), "BASE_URL="+d.public, "ISSUER="+issuer, "USERNAME=nurse-7", "PASSWORD="+signinPassword, "REFRESH_WAIT_S=45",
		"CHROMIUM="+chromium, "ARTIFACTS="+filepath.Join(vitals, "test-results"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res struct {
		Steps                   []string       `json:"steps"`
		Error                   string         `json:"error"`
		SignInMs                float64        `json:"signInMs"`
		Who                     string         `json:"who"`
		WrongPasswordMessage    string         `json:"wrongPasswordMessage"`
		LoginPageHasLabels      bool           `json:"loginPageHasLabels"`
		AddressBarAfterSignIn   string         `json:"addressBarAfterSignIn"`
		TokensBeforeWait        int            `json:"tokensBeforeWait"`
		TokensSeen              int            `json:"tokensSeen"`
		APIStatuses             map[string]int `json:"apiStatuses"`
		LocalStorageKeys        []string       `json:"localStorageKeys"`
		AfterSignOut            string         `json:"afterSignOut"`
		SessionKeysAfterSignOut []string       `json:"sessionKeysAfterSignOut"`
		RefreshAfterSignOut     struct {
			Status int    `json:"status"`
			Error  string `json:"error"`
		} `json:"refreshAfterSignOut"`
		EndSessionStatus int      `json:"endSessionStatus"`
		LastAccessToken  string   `json:"lastAccessToken"`
		PageErrors       []string `json:"pageErrors"`
	}
	out := strings.TrimSpace(stdout.String())
	if err := json.Unmarshal([]byte(out[strings.LastIndexByte(out, '\n')+1:]), &res); err != nil || runErr != nil {
		t.Fatalf("signin e2e: %v %v\nresult %s\nstderr %s\ndev stderr %s", runErr, err, out, stderr.String(), tail(d.stderr.String(), 2000))
	}
	t.Logf("sign-in in Chromium, page open → feed playing (with one wrong password first): %.0f ms; tokens seen %d (before the %ds wait %d); API statuses %v",
		res.SignInMs, res.TokensSeen, 45, res.TokensBeforeWait, res.APIStatuses)
	if res.Who != "Signed in as Test nurse-7" || !res.LoginPageHasLabels || !strings.Contains(res.WrongPasswordMessage, "not right") {
		t.Errorf("who %q, labels %v, wrong-password message %q", res.Who, res.LoginPageHasLabels, res.WrongPasswordMessage)
	}
	if strings.Contains(res.AddressBarAfterSignIn, "code=") {
		t.Errorf("the code stayed in the address bar: %s", res.AddressBarAfterSignIn)
	}
	if res.TokensSeen-res.TokensBeforeWait < 2 {
		t.Errorf("%d new access tokens across 45 s of 20 s tokens, want at least 2 refreshes", res.TokensSeen-res.TokensBeforeWait)
	}
	if res.APIStatuses["401"] > 0 {
		t.Errorf("the API refused %d calls across the refreshes", res.APIStatuses["401"])
	}
	if len(res.LocalStorageKeys) > 0 {
		t.Errorf("tokens or state in localStorage: %v", res.LocalStorageKeys)
	}
	if len(res.SessionKeysAfterSignOut) > 0 || !strings.HasPrefix(res.AfterSignOut, d.public+"/") {
		t.Errorf("after sign-out: at %s, session keys %v", res.AfterSignOut, res.SessionKeysAfterSignOut)
	}
	if res.EndSessionStatus != 302 {
		t.Errorf("end_session answered %d, want 302 back to Vitals", res.EndSessionStatus)
	}
	if res.RefreshAfterSignOut.Status != 400 || res.RefreshAfterSignOut.Error != "invalid_grant" {
		t.Errorf("refresh token after sign-out: %+v, want 400 invalid_grant", res.RefreshAfterSignOut)
	}
	if len(res.PageErrors) > 0 {
		t.Errorf("page errors: %v", res.PageErrors)
	}
	// The last access token: refused once its 20 s are over (leeway 2 s).
	var exp int64
	if parts := strings.Split(res.LastAccessToken, "."); len(parts) == 3 {
		var claims struct {
			Exp int64 `json:"exp"`
		}
		b, _ := decodeJWTPart(parts[1])
		_ = json.Unmarshal(b, &claims)
		exp = claims.Exp
	}
	if exp == 0 {
		t.Fatal("no access token captured")
	}
	time.Sleep(time.Until(time.Unix(exp, 0).Add(3 * time.Second)))
	if st := apiStatus(t, d.public+"/api/videos", res.LastAccessToken); st != 401 {
		t.Errorf("the signed-out session's access token after its expiry: %d, want 401", st)
	}
}

func decodeJWTPart(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
