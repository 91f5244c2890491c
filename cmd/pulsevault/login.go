package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mieweb/pulsevault/shared/auth"
)

// defaultIssuer is the embedded provider of a `pulsevault dev` on its
// default public port.
const defaultIssuer = "http://127.0.0.1:3000/oidc"

// storedLogin is what `pulsevault login` keeps in the user's config dir:
// the refresh token (rotated on every use) and where it came from. It is
// a credential: the file is 0600 in a 0700 directory.
type storedLogin struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	RefreshToken string `json:"refresh_token"`
	Subject      string `json:"subject"`
}

// loginPath is os.UserConfigDir()/pulsevault/login.json.
func loginPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for the stored login: %w", err)
	}
	return filepath.Join(dir, "pulsevault", "login.json"), nil
}

func (l *storedLogin) save() error {
	path, err := loginPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readLogin() (*storedLogin, error) {
	path, err := loginPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var l storedLogin
	if err := json.Unmarshal(b, &l); err != nil || l.RefreshToken == "" {
		return nil, fmt.Errorf("%s is damaged: run pulsevault login again", path)
	}
	return &l, nil
}

// discovered is the issuer's discovery document as the CLI needs it.
type discovered struct {
	endpoint   oauth2.Endpoint
	revocation string
}

func discover(ctx context.Context, issuer string) (discovered, error) {
	ctx = oidc.ClientContext(ctx, &http.Client{Timeout: 15 * time.Second})
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return discovered{}, fmt.Errorf("issuer %s: %w", issuer, err)
	}
	var doc struct {
		Revocation string `json:"revocation_endpoint"`
	}
	_ = p.Claims(&doc)
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInParams // public client: client_id in the form, no secret
	return discovered{endpoint: ep, revocation: doc.Revocation}, nil
}

func oauthConfig(clientID string, d discovered) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, Endpoint: d.endpoint, Scopes: []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}}
}

const loginUsage = `Usage: pulsevault login [--issuer URL] [--client-id ID]

Signs this computer's user in with the device authorization grant: prints a
URL and a code to approve in a browser (on any device), waits, and keeps the
refresh token in the user's config directory (mode 0600). upload and whoami
then use it; --token still overrides it.

  --issuer URL     the OpenID provider (OIDC_ISSUER; default ` + defaultIssuer + `)
  --client-id ID   the CLI's client id there (OIDC_CLI_CLIENT_ID; default pulsevault-cli)
`

func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	issuer := fs.String("issuer", envOr("OIDC_ISSUER", defaultIssuer), "")
	clientID := fs.String("client-id", envOr("OIDC_CLI_CLIENT_ID", "pulsevault-cli"), "")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, loginUsage)
		return nil
	} else if err != nil || fs.NArg() > 0 {
		return fmt.Errorf("%w: login: bad arguments (run pulsevault login -h)", errUsage)
	}
	d, err := discover(ctx, strings.TrimRight(*issuer, "/"))
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if d.endpoint.DeviceAuthURL == "" {
		return fmt.Errorf("login: %s offers no device authorization grant; register the CLI there (README, Signing in)", *issuer)
	}
	cfg := oauthConfig(*clientID, d)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	fmt.Fprintf(stdout, "To sign in, open %s\nand enter the code %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(stdout, "(or open %s)\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(stdout, "Waiting for approval...")
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "expired_token" || errors.Is(err, context.DeadlineExceeded) {
			return errors.New("login: the code expired before it was approved; run pulsevault login again")
		}
		return fmt.Errorf("login: %w", err)
	}
	if tok.RefreshToken == "" {
		return errors.New("login: the issuer gave no refresh token (allow offline_access for the CLI client)")
	}
	l := &storedLogin{Issuer: strings.TrimRight(*issuer, "/"), ClientID: *clientID, RefreshToken: tok.RefreshToken, Subject: unverifiedSubject(tok.AccessToken)}
	if err := l.save(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	fmt.Fprintf(stdout, "Signed in as %s.\n", l.Subject)
	return nil
}

// unverifiedSubject reads sub from a JWT for display only (whoami verifies).
func unverifiedSubject(jwt string) string {
	var c struct {
		Sub string `json:"sub"`
	}
	parts := strings.Split(jwt, ".")
	if len(parts) == 3 {
		if b, err := decodeSegment(parts[1]); err == nil {
			_ = json.Unmarshal(b, &c)
		}
	}
	return c.Sub
}

// loginTokens returns a function that hands out a valid access token from
// the stored login, refreshing it (and saving the rotated refresh token)
// when it is about to expire.
func loginTokens(ctx context.Context) (func(context.Context) (string, error), *storedLogin, error) {
	l, err := readLogin()
	if err != nil {
		return nil, nil, err
	}
	if l == nil {
		return nil, nil, nil
	}
	d, err := discover(ctx, l.Issuer)
	if err != nil {
		return nil, nil, err
	}
	cfg := oauthConfig(l.ClientID, d)
	var mu sync.Mutex
	var cur *oauth2.Token
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if cur != nil && time.Until(cur.Expiry) > 30*time.Second {
			return cur.AccessToken, nil
		}
		tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: l.RefreshToken}).Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
				return "", errors.New("the stored login has expired or was revoked: run pulsevault login")
			}
			return "", err
		}
		if tok.RefreshToken != "" && tok.RefreshToken != l.RefreshToken {
			l.RefreshToken = tok.RefreshToken
			if err := l.save(); err != nil {
				return "", err
			}
		}
		cur = tok
		return tok.AccessToken, nil
	}, l, nil
}

func runWhoami(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: whoami takes no arguments", errUsage)
	}
	tokens, l, err := loginTokens(ctx)
	if err != nil {
		return fmt.Errorf("whoami: %w", err)
	}
	if l == nil {
		fmt.Fprintln(stdout, "Not signed in (run pulsevault login).")
		return errors.New("whoami: not signed in")
	}
	tok, err := tokens(ctx)
	if err != nil {
		return fmt.Errorf("whoami: %w", err)
	}
	// Verified as the API would: the issuer's keys, iss, exp.
	v, err := auth.New(auth.Options{Discover: true, Issuer: l.Issuer, RolesClaim: envOr("JWT_ROLES_CLAIM", auth.DefaultRolesClaim), Leeway: 30 * time.Second})
	if err != nil {
		return err
	}
	who, err := v.Verify(ctx, tok)
	if err != nil {
		return fmt.Errorf("whoami: the issuer's token does not verify: %w", err)
	}
	roles := strings.Join(who.Roles, ", ")
	if roles == "" {
		roles = "(none)"
	}
	fmt.Fprintf(stdout, "%s\n  issuer  %s\n  roles   %s\n", who.Subject, l.Issuer, roles)
	return nil
}

func runLogout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: logout takes no arguments", errUsage)
	}
	l, err := readLogin()
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if l == nil {
		fmt.Fprintln(stdout, "Not signed in.")
		return nil
	}
	// Revoke at the issuer first (RFC 7009); the local copy goes either way.
	if d, err := discover(ctx, l.Issuer); err == nil && d.revocation != "" {
		form := url.Values{"token": {l.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {l.ClientID}}
		if resp, err := http.PostForm(d.revocation, form); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fmt.Fprintf(stderr, "pulsevault: the issuer answered %d to the revocation; the local login is removed anyway\n", resp.StatusCode)
			}
		} else {
			fmt.Fprintf(stderr, "pulsevault: could not revoke at the issuer (%v); the local login is removed anyway\n", err)
		}
	}
	path, _ := loginPath()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logout: %w", err)
	}
	fmt.Fprintf(stdout, "Signed out %s.\n", l.Subject)
	return nil
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// envOr is the environment variable name, or def when it is empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
