// Package relaybin holds the relay agents (cmd/sealflow-relay) built for
// each host architecture, embedded in sealflow by `make agents`.
package relaybin

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

//go:embed agents
var agents embed.FS

// Agent is the relay agent for one architecture.
type Agent struct {
	Arch string
	// Gz is the agent, gzip-compressed, and GzSum its hex sha256.
	Gz    []byte
	GzSum string
	// Sum is the hex sha256 of the agent itself (what names it on a host)
	// and Size its length.
	Sum  string
	Size int64
}

// Agents gives the embedded agents; its zero value is ready to use.
type Agents struct {
	once sync.Once
	m    map[string]*Agent
	err  error
}

// For returns the agent for a Go architecture name (amd64, arm64).
func (a *Agents) For(arch string) (*Agent, error) {
	a.once.Do(func() { a.m, a.err = load(agents) })
	if a.err != nil {
		return nil, a.err
	}
	ag, ok := a.m[arch]
	if !ok {
		if len(a.m) == 0 {
			return nil, fmt.Errorf("this sealflow was built without relay agents (make agents, then build)")
		}
		return nil, fmt.Errorf("this sealflow has no relay agent for linux/%s", arch)
	}
	return ag, nil
}

func load(fsys fs.FS) (map[string]*Agent, error) {
	m := map[string]*Agent{}
	for _, arch := range []string{"amd64", "arm64"} {
		gz, err := fs.ReadFile(fsys, "agents/sealflow-relay-linux-"+arch+".gz")
		if err != nil {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, fmt.Errorf("relay agent for %s: %w", arch, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, zr)
		if err != nil {
			return nil, fmt.Errorf("relay agent for %s: %w", arch, err)
		}
		gs := sha256.Sum256(gz)
		m[arch] = &Agent{Arch: arch, Gz: gz, GzSum: hex.EncodeToString(gs[:]), Sum: hex.EncodeToString(h.Sum(nil)), Size: n}
	}
	return m, nil
}
