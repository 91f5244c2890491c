package grant

import (
	"strings"
	"testing"
	"time"

	"github.com/mieweb/pulsevault/shared/auth"
	"github.com/mieweb/pulsevault/shared/media/meta"
	"github.com/mieweb/pulsevault/shared/playback/token"
	"github.com/mieweb/pulsevault/shared/topology"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadSettings(t *testing.T) {
	c, err := LoadSettings(env())
	if err != nil || c.TTL != 300*time.Second || c.MediaBase != "/media" || strings.Join(c.Roles, ",") != "pulsevault:viewer,pulsevault:admin" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"PLAYBACK_TTL", "301s"}, {"PLAYBACK_TTL", "0s"}, {"PLAYBACK_TTL", "soon"},
		{"MEDIA_BASE", "media"}, {"MEDIA_BASE", "/media?x=1"},
	} {
		_, err := LoadSettings(env(bad...))
		if err == nil || !strings.Contains(err.Error(), bad[0]) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestPolicyAndGrant(t *testing.T) {
	c, _ := LoadSettings(env("PLAYBACK_ROLES", "clinician", "MEDIA_BASE", "https://pv.example.org/media/"))
	v := &meta.Video{ID: "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f", Uploader: "u1"}
	for _, tc := range []struct {
		who  *auth.Claims
		want bool
	}{
		{&auth.Claims{Subject: "u1"}, true},
		{&auth.Claims{Subject: "u2"}, false},
		{&auth.Claims{Subject: "u2", Roles: []string{"viewer"}}, false},
		{&auth.Claims{Subject: "u2", Roles: []string{"clinician"}}, true},
		{nil, false},
	} {
		if got := c.CanView(tc.who, v); got != tc.want {
			t.Errorf("%+v: %v", tc.who, got)
		}
	}
	if c.CanView(&auth.Claims{Subject: ""}, &meta.Video{ID: v.ID}) {
		t.Error("an empty subject owns a video without uploader")
	}
	gone := time.Now()
	w := &meta.Video{ID: v.ID, Uploader: "u1", Withdrawn: &gone}
	if c.CanView(&auth.Claims{Subject: "u1"}, w) || c.CanView(&auth.Claims{Subject: "u2", Roles: []string{"clinician"}}, w) {
		t.Error("a withdrawn video is still visible")
	}
	line, _ := token.GenerateKeyLine("k")
	ring, _ := token.ParseKeys([]byte(line))
	now := time.Now()
	g, err := c.Grant(ring, v.ID, now)
	if err != nil || !strings.HasPrefix(g.URL, "https://pv.example.org/media/") || !strings.HasSuffix(g.URL, "/videos/"+v.ID+"/hls/master.m3u8") {
		t.Fatalf("grant: %+v %v", g, err)
	}
	tok := strings.SplitN(strings.TrimPrefix(g.URL, "https://pv.example.org/media/"), "/", 2)[0]
	cl, err := ring.Verify(tok, now)
	if err != nil || cl.Video != v.ID || cl.Expiry.After(now.Add(token.MaxTTL)) || cl.Grant == "" || cl.Grant != g.ID {
		t.Fatalf("granted token: %+v %v", cl, err)
	}
	// The feed's poster URL grants the poster and nothing else.
	pu, pgid, err := c.Poster(ring, v.ID, now)
	if err != nil || !strings.HasPrefix(pu, "https://pv.example.org/media/") || !strings.HasSuffix(pu, "/videos/"+v.ID+"/poster.jpg") {
		t.Fatalf("poster: %q %v", pu, err)
	}
	pc, err := ring.Verify(strings.SplitN(strings.TrimPrefix(pu, "https://pv.example.org/media/"), "/", 2)[0], now)
	if err != nil || !pc.Exact || pc.Grant != pgid || pgid == g.ID || pc.Allows(topology.VideoPrefix(v.ID)+"poster.jpg") != nil ||
		pc.Allows(topology.VideoPrefix(v.ID)+"hls/master.m3u8") == nil || pc.Expiry.After(now.Add(token.MaxTTL)) {
		t.Fatalf("poster token: %+v %v", pc, err)
	}
	if !Playable(meta.Ready) || !Playable(meta.Complete) || Playable(meta.Processing) || Playable(meta.Failed) {
		t.Error("Playable")
	}
}

// Regression (issue 15, finding 9): the default roles are namespaced, so a
// generic "viewer" or "admin" from an IdP grants nothing.
func TestDefaultRolesAreNamespaced(t *testing.T) {
	c, err := LoadSettings(env())
	if err != nil {
		t.Fatal(err)
	}
	v := &meta.Video{ID: "3f2b8c1e-5d4a-4e6b-9c7d-0a1b2c3d4e5f", Uploader: "u1"}
	for _, generic := range []string{"viewer", "admin"} {
		if who := (&auth.Claims{Subject: "u2", Roles: []string{generic}}); c.CanView(who, v) || c.SeesAll(who) {
			t.Errorf("role %q views every video", generic)
		}
	}
	for _, role := range []string{"pulsevault:viewer", "pulsevault:admin"} {
		if who := (&auth.Claims{Subject: "u2", Roles: []string{role}}); !c.CanView(who, v) || !c.SeesAll(who) {
			t.Errorf("role %q does not view every video", role)
		}
	}
}
