package relaybin

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
)

// The agents `make agents` builds are embedded, each unpacking to the sum
// that names it on a host.
func TestEmbeddedAgents(t *testing.T) {
	var a Agents
	for _, arch := range []string{"amd64", "arm64"} {
		ag, err := a.For(arch)
		if err != nil {
			t.Fatalf("%s: %v (make agents builds them)", arch, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(ag.Gz))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(raw)
		if hex.EncodeToString(s[:]) != ag.Sum || int64(len(raw)) != ag.Size {
			t.Errorf("%s: unpacks to %d bytes, sha256 %x; the agent says %d, %s", arch, len(raw), s, ag.Size, ag.Sum)
		}
		// Small, as the package it relays is large.
		if ag.Size > 4<<20 {
			t.Errorf("%s: the agent is %d bytes", arch, ag.Size)
		}
	}
	if _, err := a.For("sparc64"); err == nil || !strings.Contains(err.Error(), "sparc64") {
		t.Errorf("an architecture without an agent: %v", err)
	}
}
