package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/testutil/testclip"
	"github.com/mieweb/pulsevault/shared/testutil/testenv"
)

const signinPassword = "a long password for tests"

// cli runs the pulsevault binary with its own config dir (the stored
// login) and returns stdout, stderr and the error.
type cli struct {
	t      *testing.T
	bin    string
	config string
	env    []string
}

func newCLI(t *testing.T, bin string, env ...string) *cli {
	return &cli{t: t, bin: bin, config: t.TempDir(), env: env}
}

func (c *cli) cmd(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), append([]string{"XDG_CONFIG_HOME=" + c.config, "AUTH_HS256=off", "PULSEVAULT_TOKEN="}, c.env...)...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func (c *cli) run(stdin string, args ...string) (string, string, error) {
	cmd := c.cmd(stdin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// addUser creates a user of the embedded provider with `pulsevault user add`.
func (c *cli) addUser(usersFile, id, roles string) {
	c.t.Helper()
	if out, errOut, err := c.run(signinPassword+"\n", "user", "add", id, "--name", "Test "+id, "--roles", roles, "--users", usersFile); err != nil {
		c.t.Fatalf("user add %s: %v\n%s%s", id, err, out, errOut)
	}
}

// codeFlowToken signs user in at issuer as Vitals would (authorization
// code + PKCE S256, the login form posted by a client with a cookie jar)
// and returns the access token.
func codeFlowToken(t *testing.T, issuer, redirect, user, password string) (string, error) {
	t.Helper()
	cfg := &oauth2.Config{ClientID: "pulsevault-vitals", RedirectURL: redirect, Scopes: []string{"openid", "profile", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/authorize", TokenURL: issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("no login page at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	resp, err = c.PostForm(issuer+"/login", url.Values{"authRequestID": {id}, "username": {user}, "password": {password}})
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, _ := resp.Location()
	if loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("login of %s: %d %s", user, resp.StatusCode, body)
	}
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func apiStatus(t *testing.T, u, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSignIn runs `pulsevault dev` with its embedded OpenID provider (no
// HS256): the code + PKCE flow gives a token the API accepts; forged
// tokens are refused; the CLI signs in with the device flow (the test
// approves the code on the provider's page), whoami shows the user,
// `upload --wait` works with the stored login, and logout revokes it.
func TestSignIn(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	bin := buildPulsevault(t)
	d := startDev(t, bin, "..", 0, "AUTH_HS256=off")
	issuer := d.public + "/oidc"
	users := filepath.Join(d.data, "users.yaml")
	c := newCLI(t, bin)
	c.addUser(users, "nurse-7", "pulsevault:viewer")
	c.addUser(users, "nurse-8", "")
	videos := d.public + "/api/videos"

	// The console token of dev is an RS256 token of the embedded provider.
	if st := apiStatus(t, videos, d.token); st != 200 {
		t.Fatalf("dev login token: %d", st)
	}

	start := time.Now()
	tok, err := codeFlowToken(t, issuer, d.public+"/auth/callback", "nurse-7", signinPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("code + PKCE sign-in (authorize → login form → token): %s", time.Since(start).Round(time.Millisecond))
	if st := apiStatus(t, videos, tok); st != 200 {
		t.Fatalf("API refused the code-flow access token: %d", st)
	}
	// A second user's token works too, and is a different subject.
	tok8, err := codeFlowToken(t, issuer, d.public+"/auth/callback", "nurse-8", signinPassword)
	if err != nil || apiStatus(t, videos, tok8) != 200 {
		t.Fatalf("second user: %v", err)
	}

	// Forged tokens, each refused by the API of this stack.
	secret, _ := os.ReadFile(filepath.Join(d.data, "secrets", auth.HS256SecretName))
	hs, _ := auth.SignHS256(secret, issuer, "pulsevault-api", "nurse-7", []string{"pulsevault:admin"}, time.Hour)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "nurse-7", "iss": issuer, "aud": "pulsevault-api",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	foreign, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "nurse-7", "iss": "https://idp.example", "aud": "pulsevault-api",
		"exp": time.Now().Add(time.Hour).Unix()}).SignedString(other)
	// HS256 "signed" with the issuer's own public key (PEM), as a
	// confused verifier would check it.
	var jwks jose.JSONWebKeySet
	if resp, err := http.Get(issuer + "/keys"); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&jwks)
		resp.Body.Close()
	}
	if len(jwks.Keys) == 0 {
		t.Fatal("no JWKS at the issuer")
	}
	der, _ := x509.MarshalPKIXPublicKey(jwks.Keys[0].Key)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	withPub := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "nurse-7", "iss": issuer, "aud": "pulsevault-api",
		"exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"pulsevault:admin"}})
	withPub.Header["kid"] = jwks.Keys[0].KeyID
	hsPub, _ := withPub.SignedString(pubPEM)
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	sig[10] ^= 2
	for name, forged := range map[string]string{"HS256 with the dev secret": hs, "HS256 with the issuer's public key": hsPub, "alg none": none, "another issuer": foreign,
		"tampered signature": parts[0] + "." + parts[1] + "." + string(sig)} {
		if st := apiStatus(t, videos, forged); st != 401 {
			t.Errorf("%s: API answered %d, want 401", name, st)
		}
	}

	// CLI: device flow, approved through the provider's page.
	login := c.cmd("", "login", "--issuer", issuer)
	stdout, _ := login.StdoutPipe()
	var loginErr strings.Builder
	login.Stderr = &loginErr
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	codeRe := regexp.MustCompile(`enter the code ([A-Z]{4}-[A-Z]{4})`)
	sc := bufio.NewScanner(stdout)
	var code string
	for sc.Scan() {
		if m := codeRe.FindStringSubmatch(sc.Text()); m != nil {
			code = m[1]
			break
		}
	}
	if code == "" {
		t.Fatalf("login printed no code; stderr %s", loginErr.String())
	}
	resp, err := http.PostForm(issuer+"/device", url.Values{"user_code": {code}, "username": {"nurse-7"}, "password": {signinPassword}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Test nurse-7") {
		t.Fatalf("device approval: %d %s", resp.StatusCode, page)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	done := make(chan error, 1)
	go func() { done <- login.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("login: %v %s", err, loginErr.String())
		}
	case <-time.After(30 * time.Second):
		_ = login.Process.Kill()
		t.Fatal("login did not finish 30 s after approval")
	}
	stored := filepath.Join(c.config, "pulsevault", "login.json")
	if fi, err := os.Stat(stored); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored login: %v %v, want mode 0600", fi, err)
	}
	if out, errOut, err := c.run("", "whoami"); err != nil || !strings.HasPrefix(out, "nurse-7\n") || !strings.Contains(out, "pulsevault:viewer") {
		t.Fatalf("whoami: %v %q %q", err, out, errOut)
	}

	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if err := testclip.Make(context.Background(), clip, testclip.Options{Seconds: 2}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	out, errOut, err := c.run("", "upload", clip, "--endpoint", d.gateway+"/function/upload/", "--no-progress", "--wait", "--wait-timeout", "3m",
		"--state", filepath.Join(t.TempDir(), "state.json"))
	if err != nil || !strings.Contains(out, "video ") {
		t.Fatalf("upload --wait with the stored login: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("upload --wait with the stored login: %s", time.Since(start).Round(time.Millisecond))

	// Logout revokes the refresh token at the provider and removes the file.
	before, _ := os.ReadFile(stored)
	if out, errOut, err := c.run("", "logout"); err != nil || !strings.Contains(out, "Signed out") {
		t.Fatalf("logout: %v %q %q", err, out, errOut)
	}
	if _, err := os.Stat(stored); !os.IsNotExist(err) {
		t.Fatal("login.json left after logout")
	}
	_ = os.WriteFile(stored, before, 0o600)
	if _, errOut, err := c.run("", "whoami"); err == nil || !strings.Contains(errOut, "expired or was revoked") {
		t.Fatalf("whoami with the revoked refresh token: %v %q", err, errOut)
	}
}

// TestExternalIssuer runs the embedded provider as a separate process
// (`pulsevault issuer`, another port) and points `pulsevault dev` at it
// with OIDC_ISSUER: the path of a clinic's own IdP. dev then runs no
// provider of its own.
func TestExternalIssuer(t *testing.T) {
	bin := buildPulsevault(t)
	publicPort := freePort(t)
	data := t.TempDir()
	c := newCLI(t, bin)
	c.addUser(filepath.Join(data, "users.yaml"), "lab-1", "pulsevault:viewer")
	redirect := "http://127.0.0.1:" + strconv.Itoa(publicPort) + "/auth/callback"
	issuer := startIssuer(t, bin, data, "OIDC_VITALS_REDIRECT_URIS="+redirect)
	d := startDev(t, bin, "..", publicPort, "AUTH_HS256=off", "OIDC_ISSUER="+issuer)
	if resp, err := http.Get(d.public + "/oidc/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("dev ran its own provider although OIDC_ISSUER is set")
		}
	}
	tok, err := codeFlowToken(t, issuer, redirect, "lab-1", signinPassword)
	if err != nil {
		t.Fatal(err)
	}
	if st := apiStatus(t, d.public+"/api/videos", tok); st != 200 {
		t.Fatalf("API pointed at the external issuer refused its token: %d", st)
	}
	if st := apiStatus(t, d.public+"/api/videos", d.token); st == 200 {
		t.Fatalf("dev printed a token that works without an issuer of its own: %q", d.token)
	}
}

// startIssuer runs `pulsevault issuer` on a free port with its state in
// data and returns the OIDC_ISSUER it prints.
func startIssuer(t *testing.T, bin, data string, env ...string) string {
	t.Helper()
	iss := exec.Command(bin, "issuer", "--data-dir", data)
	iss.Env = append(os.Environ(), append([]string{"ISSUER_PORT=0", "AUTH_HS256=off"}, env...)...)
	stdout, _ := iss.StdoutPipe()
	var issErr testenv.Buffer
	iss.Stderr = &issErr
	if err := iss.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = iss.Process.Kill()
		_ = iss.Wait()
		if t.Failed() {
			t.Logf("issuer stderr (tail):\n%s", tail(issErr.String(), 3000))
		}
	})
	sc := bufio.NewScanner(stdout)
	var issuer string
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "OIDC_ISSUER" {
			issuer = f[1]
			break
		}
	}
	if issuer == "" {
		t.Fatalf("issuer printed no OIDC_ISSUER; stderr %s", issErr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return issuer
}
