package token

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mieweb/pulsevault/shared/topology"
)

// A prefix that does not end with "/" would grant every key starting
// alike (hls/360 → hls/3600p/..., poster.jpg → poster.jpg.bak): Sign
// refuses it, and Verify refuses a token that carries one even when its
// MAC is good (a key that signed such a token before).
func TestPrefixMustEndWithSlash(t *testing.T) {
	k := ring(t, keyNew)
	for _, p := range []string{topology.VideoPrefix(videoA) + "hls/360", topology.VideoPrefix(videoA) + "poster.jpg", "videos/" + videoA} {
		if _, err := k.Sign(videoA, p, now.Add(time.Minute), now); err == nil {
			t.Errorf("Sign accepted the prefix %q", p)
		}
	}
	if _, err := k.Sign(videoA, topology.VideoPrefix(videoA)+"hls/360p/", now.Add(time.Minute), now); err != nil {
		t.Errorf("Sign refused a folder prefix: %v", err)
	}
	// A token for "…/hls/360", signed with the key as Sign did before.
	sk := k.keys[0]
	id := uuid.MustParse(videoA)
	prefix := topology.VideoPrefix(videoA) + "hls/360"
	var b bytes.Buffer
	b.WriteByte(version)
	b.WriteByte(byte(len(sk.kid)))
	b.WriteString(sk.kid)
	b.Write(id[:])
	b.WriteByte(byte(len(prefix)))
	b.WriteString(prefix)
	_ = binary.Write(&b, binary.BigEndian, now.Add(time.Minute).Unix())
	b.Write(mac(sk.secret, b.Bytes()))
	if c, err := k.Verify(base64.RawURLEncoding.EncodeToString(b.Bytes()), now); err == nil {
		t.Errorf("Verify accepted a prefix without a trailing slash: %+v", c)
	}
}
