package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// errNotFound is any state that is missing, used up or expired.
var errNotFound = errors.New("issuer: not found or expired")

// hashed is the KV key part for a secret value (code, refresh token,
// device code): the store never holds the value itself, so a copy of the
// bucket grants nothing.
func hashed(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// state is the JetStream KV that makes the provider stateless: any
// replica can answer any step of a flow.
type state struct{ kv jetstream.KeyValue }

func (s state) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, errNotFound
	} else if err != nil {
		return 0, err
	}
	return e.Revision(), json.Unmarshal(e.Value(), v)
}

func (s state) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, key, b)
	return err
}

// update replaces key only if it is still at revision rev.
func (s state) update(ctx context.Context, key string, v any, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.kv.Update(ctx, key, b, rev)
	return err
}

// take reads key and deletes it in one compare-and-delete, so exactly one
// caller gets a single-use value (a code, a device grant).
func (s state) take(ctx context.Context, key string, v any) error {
	rev, err := s.get(ctx, key, v)
	if err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return errNotFound
	}
	return nil
}

func (s state) del(ctx context.Context, key string) error {
	err := s.kv.Delete(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// authRequest is a pending sign-in of a client, from /authorize to the
// token response.
type authRequest struct {
	ID           string            `json:"id"`
	Created      time.Time         `json:"created"`
	ClientID     string            `json:"client_id"`
	RedirectURI  string            `json:"redirect_uri"`
	State        string            `json:"state,omitempty"`
	Nonce        string            `json:"nonce,omitempty"`
	Scopes       []string          `json:"scopes"`
	ResponseType oidc.ResponseType `json:"response_type"`
	ResponseMode oidc.ResponseMode `json:"response_mode,omitempty"`
	Challenge    string            `json:"code_challenge"`
	Method       string            `json:"code_challenge_method"`
	Audience     []string          `json:"audience"`
	UserID       string            `json:"user_id,omitempty"`
	SignedIn     bool              `json:"done,omitempty"`
	AuthTime     time.Time         `json:"auth_time,omitzero"`
}

func (a *authRequest) GetID() string         { return a.ID }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return amr(a.SignedIn) }
func (a *authRequest) GetAudience() []string { return a.Audience }
func (a *authRequest) GetAuthTime() time.Time {
	return a.AuthTime
}
func (a *authRequest) GetClientID() string { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.Challenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.Challenge, Method: oidc.CodeChallengeMethod(a.Method)}
}
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.UserID }
func (a *authRequest) Done() bool                         { return a.SignedIn }
func (a *authRequest) expired(now time.Time, d time.Duration) bool {
	return now.After(a.Created.Add(d))
}

func amr(done bool) []string {
	if done {
		return []string{"pwd"}
	}
	return nil
}

// refreshToken is one refresh token (stored under its hash). Rotation
// replaces the current token of a family; a rotated-out token presented
// again revokes the whole family (RFC 9700 §4.14.2).
type refreshToken struct {
	Family   string    `json:"family"`
	UserID   string    `json:"user_id"`
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	Audience []string  `json:"audience"`
	AuthTime time.Time `json:"auth_time"`
	AMR      []string  `json:"amr,omitempty"`
	Expires  time.Time `json:"expires"`
	Rotated  bool      `json:"rotated,omitempty"` // replaced by a newer token: using it again is reuse
}

func (r *refreshToken) GetAMR() []string            { return r.AMR }
func (r *refreshToken) GetAudience() []string       { return r.Audience }
func (r *refreshToken) GetAuthTime() time.Time      { return r.AuthTime }
func (r *refreshToken) GetClientID() string         { return r.ClientID }
func (r *refreshToken) GetScopes() []string         { return r.Scopes }
func (r *refreshToken) GetSubject() string          { return r.UserID }
func (r *refreshToken) SetCurrentScopes(s []string) { r.Scopes = s }

// family is a chain of rotated refresh tokens: the hash of its current one.
type family struct {
	Current  string    `json:"current"`
	UserID   string    `json:"user_id"`
	ClientID string    `json:"client_id"`
	Expires  time.Time `json:"expires"`
}

// device is one device authorization (RFC 8628), under its device code's hash.
type device struct {
	ClientID string    `json:"client_id"`
	UserCode string    `json:"user_code"`
	Scopes   []string  `json:"scopes"`
	Expires  time.Time `json:"expires"`
	Done     bool      `json:"done,omitempty"`
	Denied   bool      `json:"denied,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	AuthTime time.Time `json:"auth_time,omitzero"`
}
