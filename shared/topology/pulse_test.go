package topology

import "testing"

func TestPulseObjects(t *testing.T) {
	const a, c = "3f0c8b1e-0000-4000-8000-000000000000", "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"
	if got := PulseVideoObject(a); got != "pulse-"+a {
		t.Fatal(got)
	}
	if got := PulseCompanionObject(a, c); got != "pulse-"+a+"_"+c {
		t.Fatal(got)
	}
	for obj, want := range map[string][2]string{
		PulseVideoObject(a):        {a, ""},
		PulseCompanionObject(a, c): {a, c},
	} {
		an, co, ok := ParsePulseObject(obj)
		if !ok || an != want[0] || co != want[1] {
			t.Errorf("%s: %q %q %v", obj, an, co, ok)
		}
	}
	for _, bad := range []string{"", "pulse-", "pulse-" + a + "_", "pulse-" + a + ".info", "pulse-" + a + "_" + c + ".info",
		"pulse-" + a + "_" + c + "_" + c, "0123456789abcdef0123456789abcdef", "pulse-3F0C8B1E-0000-4000-8000-000000000000", PulseClaimKey(a)} {
		if _, _, ok := ParsePulseObject(bad); ok {
			t.Errorf("%q parsed as a Pulse object", bad)
		}
	}
}
