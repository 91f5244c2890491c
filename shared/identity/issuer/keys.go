package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storedKey is one signing key as kept in the keys bucket.
type storedKey struct {
	ID      string    `json:"kid"`
	Alg     string    `json:"alg"`
	Created time.Time `json:"created"`
	DER     []byte    `json:"pkcs8"`
}

// keyring holds the provider's signing keys. The newest signs; older ones
// stay published in the JWKS for the overlap, so tokens they signed keep
// verifying until they expire. Every replica shares the ring through the
// keys bucket (compare-and-set, so two replicas never both rotate).
type keyring struct {
	kv       jetstream.KeyValue
	alg      jose.SignatureAlgorithm
	rotate   time.Duration // a key signs for this long
	overlap  time.Duration // then stays published this much longer
	now      func() time.Time
	mu       sync.Mutex
	keys     []storedKey
	priv     map[string]crypto.Signer
	loadedAt time.Time
}

const keysKey = "signing"

// reloadEvery is how often a replica rereads the shared ring.
const reloadEvery = 30 * time.Second

func (k *keyring) current(ctx context.Context) ([]storedKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if k.keys != nil && now.Sub(k.loadedAt) < reloadEvery && now.Sub(k.keys[len(k.keys)-1].Created) < k.rotate {
		return k.keys, nil
	}
	for range 5 {
		var keys []storedKey
		var rev uint64
		e, err := k.kv.Get(ctx, keysKey)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, err
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &keys); err != nil {
				return nil, fmt.Errorf("issuer: signing keys: %w", err)
			}
		}
		changed := false
		if len(keys) == 0 || now.Sub(keys[len(keys)-1].Created) >= k.rotate {
			nk, err := newKey(k.alg, now)
			if err != nil {
				return nil, err
			}
			keys, changed = append(keys, nk), true
		}
		// Retire keys whose successor has been signing for longer than the overlap.
		for len(keys) > 1 && now.Sub(keys[1].Created) > k.overlap {
			keys, changed = keys[1:], true
		}
		if changed {
			b, _ := json.Marshal(keys)
			if rev == 0 {
				_, err = k.kv.Create(ctx, keysKey, b)
			} else {
				_, err = k.kv.Update(ctx, keysKey, b, rev)
			}
			if err != nil {
				continue // another replica rotated first: read its ring
			}
		}
		k.priv = map[string]crypto.Signer{}
		for _, sk := range keys {
			p, err := x509.ParsePKCS8PrivateKey(sk.DER)
			if err != nil {
				return nil, fmt.Errorf("issuer: signing key %s: %w", sk.ID, err)
			}
			k.priv[sk.ID] = p.(crypto.Signer)
		}
		k.keys, k.loadedAt = keys, now
		return keys, nil
	}
	return nil, errors.New("issuer: signing keys: too much contention")
}

func newKey(alg jose.SignatureAlgorithm, now time.Time) (storedKey, error) {
	var priv any
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return storedKey{}, fmt.Errorf("issuer: signing algorithm %s: use RS256 or ES256", alg)
	}
	if err != nil {
		return storedKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	return storedKey{ID: uuid.NewString(), Alg: string(alg), Created: now.UTC(), DER: der}, err
}

// signingKey implements op.SigningKey and op.Key.
type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (s *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return s.alg }
func (s *signingKey) Key() any                                    { return s.key }
func (s *signingKey) ID() string                                  { return s.id }

type publicKey struct{ signingKey }

func (p *publicKey) Algorithm() jose.SignatureAlgorithm { return p.alg }
func (p *publicKey) Use() string                        { return "sig" }
func (p *publicKey) Key() any                           { return p.key.Public() }

func (k *keyring) signing(ctx context.Context) (op.SigningKey, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	last := keys[len(keys)-1]
	k.mu.Lock()
	defer k.mu.Unlock()
	return &signingKey{id: last.ID, alg: jose.SignatureAlgorithm(last.Alg), key: k.priv[last.ID]}, nil
}

func (k *keyring) published(ctx context.Context) ([]op.Key, error) {
	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]op.Key, 0, len(keys))
	for _, sk := range keys {
		out = append(out, &publicKey{signingKey{id: sk.ID, alg: jose.SignatureAlgorithm(sk.Alg), key: k.priv[sk.ID]}})
	}
	return out, nil
}

// cryptoKey is the provider's 32-byte key for its opaque values, shared
// by every replica (created once).
func cryptoKey(ctx context.Context, kv jetstream.KeyValue) ([32]byte, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return key, err
	}
	if _, err := kv.Create(ctx, "crypto", key[:]); err == nil {
		return key, nil
	}
	e, err := kv.Get(ctx, "crypto")
	if err != nil {
		return key, err
	}
	if len(e.Value()) != 32 {
		return key, errors.New("issuer: crypto key has the wrong size")
	}
	copy(key[:], e.Value())
	return key, nil
}
