package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mieweb/pulsevault/shared/audit/event"
)

// storage implements op.Storage and op.DeviceAuthorizationStorage over
// the KV state, the users file and the keyring.
type storage struct {
	iss *Issuer
	st  state
}

var (
	_ op.Storage                    = (*storage)(nil)
	_ op.DeviceAuthorizationStorage = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest  = (*storage)(nil)
)

// authRequestTTL is how long a person has to sign in after /authorize.
const authRequestTTL = 10 * time.Minute

func (s *storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	c, ok := s.iss.clients[r.ClientID]
	if !ok {
		return nil, oidc.ErrInvalidClient()
	}
	// The library accepts plain PKCE and none for public clients; this
	// provider does not: S256 only (RFC 9700 §2.1.1).
	if c.pkce && (r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	}
	if len(r.Prompt) == 1 && r.Prompt[0] == oidc.PromptNone {
		return nil, oidc.ErrLoginRequired()
	}
	a := &authRequest{ID: uuid.NewString(), Created: time.Now().UTC(), ClientID: r.ClientID, RedirectURI: r.RedirectURI,
		State: r.State, Nonce: r.Nonce, Scopes: r.Scopes, ResponseType: r.ResponseType, ResponseMode: r.ResponseMode,
		Challenge: r.CodeChallenge, Method: string(r.CodeChallengeMethod), Audience: s.iss.audience(r.ClientID)}
	return a, s.st.put(ctx, "req."+a.ID, a)
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, _, err := s.authRequest(ctx, id)
	return a, err
}

func (s *storage) authRequest(ctx context.Context, id string) (*authRequest, uint64, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, 0, errNotFound
	}
	var a authRequest
	rev, err := s.st.get(ctx, "req."+id, &a)
	if err != nil {
		return nil, 0, err
	}
	if a.expired(time.Now(), authRequestTTL) {
		return nil, 0, errNotFound
	}
	return &a, rev, nil
}

// AuthRequestByCode redeems a code: the code is taken (deleted) here, so a
// replayed code finds nothing, even when the first redemption failed on a
// wrong PKCE verifier.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	var id string
	if err := s.st.take(ctx, "code."+hashed(code), &id); err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is unknown, used or expired")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.st.put(ctx, "code."+hashed(code), id)
}

func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.st.del(ctx, "req."+id)
}

// completeLogin marks the auth request signed in by userID.
func (s *storage) completeLogin(ctx context.Context, id, userID string) error {
	for range 3 {
		a, rev, err := s.authRequest(ctx, id)
		if err != nil {
			return err
		}
		a.UserID, a.SignedIn, a.AuthTime = userID, true, time.Now().UTC()
		if err := s.st.update(ctx, "req."+id, a, rev); err == nil {
			return nil
		}
	}
	return errors.New("issuer: auth request changed concurrently")
}

// CreateAccessToken only names the token: access tokens are JWTs the API
// verifies on its own, so nothing is stored.
func (s *storage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	return uuid.NewString(), time.Now().Add(s.iss.o.AccessTTL), nil
}

func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	now := time.Now().UTC()
	rt := refreshToken{UserID: r.GetSubject(), Scopes: r.GetScopes(), Audience: r.GetAudience(), Expires: now.Add(s.iss.o.RefreshTTL)}
	switch x := r.(type) {
	case *authRequest:
		rt.ClientID, rt.AuthTime, rt.AMR = x.ClientID, x.AuthTime, x.GetAMR()
	case *refreshToken:
		rt.ClientID, rt.AuthTime, rt.AMR, rt.Family = x.ClientID, x.AuthTime, x.AMR, x.Family
	case *op.DeviceAuthorizationState:
		rt.ClientID, rt.AuthTime, rt.AMR = x.ClientID, x.AuthTime, x.AMR
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	if rt.Family == "" {
		rt.Family = uuid.NewString()
	}
	token := "pvr_" + strings.ReplaceAll(uuid.NewString()+uuid.NewString(), "-", "")
	h := hashed(token)
	if current != "" {
		// Rotation: the presented token must still be its family's current
		// one; it is marked rotated (not deleted) so that reuse is seen.
		var old refreshToken
		rev, err := s.st.get(ctx, "rt."+hashed(current), &old)
		if err != nil || old.Rotated {
			return "", "", time.Time{}, oidc.ErrInvalidGrant()
		}
		old.Rotated = true
		if err := s.st.update(ctx, "rt."+hashed(current), &old, rev); err != nil {
			return "", "", time.Time{}, oidc.ErrInvalidGrant()
		}
	}
	if err := s.st.put(ctx, "rt."+h, &rt); err != nil {
		return "", "", time.Time{}, err
	}
	if err := s.st.put(ctx, "fam."+rt.Family, family{Current: h, UserID: rt.UserID, ClientID: rt.ClientID, Expires: rt.Expires}); err != nil {
		return "", "", time.Time{}, err
	}
	return uuid.NewString(), token, now.Add(s.iss.o.AccessTTL), nil
}

// TokenRequestByRefreshToken finds a live refresh token. A rotated-out one
// is reuse — a stolen copy, or a client that lost the newer token — and
// ends the whole family, so neither party keeps a session.
func (s *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	var rt refreshToken
	if _, err := s.st.get(ctx, "rt."+hashed(token), &rt); err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token is unknown, expired or revoked")
	}
	if rt.Rotated {
		s.revokeFamily(ctx, rt.Family)
		s.iss.log.Warn("refresh token reused after rotation: session revoked", "user_id", rt.UserID, "client_id", rt.ClientID)
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token was already used; sign in again")
	}
	if time.Now().After(rt.Expires) {
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token expired; sign in again")
	}
	if u, ok, err := s.iss.users.Get(rt.UserID); err != nil || !ok || u.Disabled {
		s.revokeFamily(ctx, rt.Family)
		return nil, oidc.ErrInvalidGrant().WithDescription("the account is no longer active")
	}
	return &rt, nil
}

func (s *storage) revokeFamily(ctx context.Context, fam string) {
	var f family
	if _, err := s.st.get(ctx, "fam."+fam, &f); err == nil {
		_ = s.st.del(ctx, "rt."+f.Current)
	}
	_ = s.st.del(ctx, "fam."+fam)
}

// TerminateSession is end-session: every refresh token of userID at
// clientID is revoked.
func (s *storage) TerminateSession(ctx context.Context, userID, clientID string) error {
	keys, err := s.st.kv.ListKeysFiltered(ctx, "fam.>")
	if err != nil {
		return err
	}
	for k := range keys.Keys() {
		var f family
		if _, err := s.st.get(ctx, k, &f); err == nil && f.UserID == userID && f.ClientID == clientID {
			s.revokeFamily(ctx, strings.TrimPrefix(k, "fam."))
		}
	}
	s.iss.audit(ctx, event.Event{Actor: userID, Action: event.Logout, Outcome: event.Success})
	return nil
}

func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	var rt refreshToken
	if _, err := s.st.get(ctx, "rt."+hashed(token), &rt); err != nil || rt.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.UserID, hashed(token), nil
}

func (s *storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	var rt refreshToken
	key := "rt." + tokenOrID // GetRefreshTokenInfo's id is the hash
	if _, err := s.st.get(ctx, key, &rt); err != nil {
		key = "rt." + hashed(tokenOrID)
		if _, err := s.st.get(ctx, key, &rt); err != nil {
			return nil // access tokens are JWTs, and unknown tokens need no revoking
		}
	}
	if rt.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
	}
	s.revokeFamily(ctx, rt.Family)
	return nil
}

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return s.iss.keys.signing(ctx)
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{s.iss.keys.alg}, nil
}

func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) { return s.iss.keys.published(ctx) }

func (s *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, ok := s.iss.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client")
	}
	return c, nil
}

// AuthorizeClientIDSecret: both clients are public; none has a secret.
func (s *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	return errors.New("no confidential clients")
}

func (s *storage) SetUserinfoFromScopes(ctx context.Context, ui *oidc.UserInfo, userID, clientID string, scopes []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	return s.userinfo(ui, r.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, origin string) error {
	return s.userinfo(ui, subject, []string{oidc.ScopeOpenID, oidc.ScopeProfile})
}

func (s *storage) userinfo(ui *oidc.UserInfo, subject string, scopes []string) error {
	u, ok, err := s.iss.users.Get(subject)
	if err != nil {
		return err
	}
	if !ok || u.Disabled {
		return errors.New("no such user")
	}
	ui.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeProfile) {
		ui.Name, ui.PreferredUsername = u.Name, u.ID
	}
	ui.AppendClaims(s.iss.o.RolesClaim, u.Roles)
	return nil
}

func (s *storage) SetIntrospectionFromToken(ctx context.Context, ir *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	return errors.New("introspection is not offered: access tokens are JWTs")
}

// GetPrivateClaimsFromScopes puts the user's roles (and display name) in
// the access token, under the roles claim the API reads.
func (s *storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	u, ok, err := s.iss.users.Get(userID)
	if err != nil {
		return nil, err
	}
	if !ok || u.Disabled {
		return nil, oidc.ErrAccessDenied().WithDescription("the account is not active")
	}
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return map[string]any{s.iss.o.RolesClaim: roles, "name": u.Name}, nil
}

func (s *storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	return nil, errors.New("no JWT profile clients")
}

func (s *storage) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	return nil, errors.New("no JWT profile clients")
}

func (s *storage) Health(ctx context.Context) error {
	_, err := s.st.kv.Status(ctx)
	return err
}

func (s *storage) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	if _, ok := s.iss.clients[clientID]; !ok {
		return errors.New("unknown client")
	}
	userCode = normalizeUserCode(userCode) // the page accepts it without the dash
	if _, err := s.st.kv.Create(ctx, "uc."+userCode, []byte(hashed(deviceCode))); err != nil {
		var d device
		if _, gerr := s.st.get(ctx, "dev."+s.deviceOf(ctx, userCode), &d); gerr == nil && time.Now().Before(d.Expires) {
			return op.ErrDuplicateUserCode
		}
		// The code's old grant has expired: the user code is free again.
		if _, err := s.st.kv.Put(ctx, "uc."+userCode, []byte(hashed(deviceCode))); err != nil {
			return err
		}
	}
	return s.st.put(ctx, "dev."+hashed(deviceCode), device{ClientID: clientID, UserCode: userCode, Scopes: scopes, Expires: expires.UTC()})
}

func (s *storage) deviceOf(ctx context.Context, userCode string) string {
	e, err := s.st.kv.Get(ctx, "uc."+userCode)
	if err != nil {
		return "none"
	}
	return string(e.Value()) // the device code's hash
}

// GetDeviceAuthorizatonState is polled by the device. An approved grant is
// handed out once: it is taken from the store.
func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	key := "dev." + hashed(deviceCode)
	var d device
	if _, err := s.st.get(ctx, key, &d); err != nil || d.ClientID != clientID {
		return nil, errors.New("device code not found for client")
	}
	st := &op.DeviceAuthorizationState{ClientID: d.ClientID, Scopes: d.Scopes, Expires: d.Expires, Denied: d.Denied,
		Audience: s.iss.audience(d.ClientID)}
	if d.Done {
		if err := s.st.take(ctx, key, &d); err != nil {
			return nil, errors.New("device code already used")
		}
		_ = s.st.del(ctx, "uc."+d.UserCode)
		st.Done, st.Subject, st.AuthTime, st.AMR = true, d.Subject, d.AuthTime, amr(true)
	}
	return st, nil
}

// deviceByUserCode finds the pending grant a person typed the code of.
func (s *storage) deviceByUserCode(ctx context.Context, userCode string) (string, *device, uint64, error) {
	key := "dev." + s.deviceOf(ctx, userCode)
	var d device
	rev, err := s.st.get(ctx, key, &d)
	if err != nil || d.UserCode != userCode || d.Done || d.Denied || time.Now().After(d.Expires) {
		return "", nil, 0, errNotFound
	}
	return key, &d, rev, nil
}

func (s *storage) completeDevice(ctx context.Context, userCode, subject string) error {
	key, d, rev, err := s.deviceByUserCode(ctx, userCode)
	if err != nil {
		return err
	}
	d.Done, d.Subject, d.AuthTime = true, subject, time.Now().UTC()
	return s.st.update(ctx, key, d, rev)
}
