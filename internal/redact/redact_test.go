package redact

import (
	"strings"
	"testing"
)

func TestWriterHidesASecretSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	var s Set
	s.Add("abcdef.0123456789abcdef", "xyz") // too short to hide
	var out strings.Builder
	w := NewWriter(&out, &s)
	for _, p := range []string{"join --token abcdef.0123", "456789abcdef xyz\n", "again abcdef.0123456789abcdef"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "join --token " + Marker + " xyz\nagain " + Marker
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestRedactAddedLater(t *testing.T) {
	t.Parallel()
	var s Set
	if got := s.Redact("key 0123456789"); got != "key 0123456789" {
		t.Errorf("nothing registered: %q", got)
	}
	s.Add("0123456789")
	if got := s.Redact("key 0123456789"); got != "key "+Marker {
		t.Errorf("after Add: %q", got)
	}
}
