package videoid

import (
	"testing"

	"github.com/google/uuid"
)

func TestFromUpload(t *testing.T) {
	a := FromUpload("0f8e2b3c4d5e6f708192a3b4c5d6e7f8")
	if a != FromUpload("0f8e2b3c4d5e6f708192a3b4c5d6e7f8+bXVsdGlwYXJ0LWlk") {
		t.Fatal("object id and full tus id give different video ids")
	}
	if a == FromUpload("0f8e2b3c4d5e6f708192a3b4c5d6e7f9") {
		t.Fatal("two uploads share a video id")
	}
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 5 {
		t.Fatalf("%s: not a UUIDv5 (%v)", a, err)
	}
	// Pinned: a changed namespace or derivation would orphan finalized videos.
	if got, want := FromUpload("abc"), uuid.NewSHA1(uuid.MustParse("6f1d7c52-4a4e-5c39-9a57-2b1f0c3e8d10"), []byte("abc")).String(); got != want {
		t.Fatalf("FromUpload(abc) = %s, want %s", got, want)
	}
}

func TestFromPulseUpload(t *testing.T) {
	const anchor = "3f0c8b1e-0000-4000-8000-000000000000"
	if got := FromUpload("pulse-" + anchor + "+bXVsdGlwYXJ0"); got != anchor {
		t.Fatalf("a Pulse video's id is its artifact id: got %s", got)
	}
	// A companion is no video of its own; anything not of the shape hashes.
	if got := FromUpload("pulse-" + anchor + "_9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"); got == anchor {
		t.Fatal("a companion took its video's id")
	}
	if got := FromUpload("pulse-" + "3F0C8B1E-0000-4000-8000-000000000000"); got == anchor {
		t.Fatal("a non-canonical spelling mapped to the artifact")
	}
}
