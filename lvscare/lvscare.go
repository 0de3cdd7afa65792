// Package lvscare keeps a kernel virtual server true: VIP:PORT is spread
// over the real servers that pass a health probe. Dead servers leave after
// Fall consecutive failures and come back after Rise successes.
//
// The kernel side sits behind Backend (IPVS, nftables, and an in-memory
// Fake for tests). The daemon takes its clock, prober, backend and logger
// from its Config; it holds no global state and handles no signals.
//
// Its options, their flags and the manifests that start it are in
// lvscare/podspec, which has no kernel imports. This package imports
// nothing of plans, steps, the dag or the engine (internal/boundary).
package lvscare

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// Errors a Backend returns, matched with errors.Is.
var (
	// ErrNotFound: the kernel has no such virtual server.
	ErrNotFound = errors.New("virtual server not found")
	// ErrExists: the virtual server is already there.
	ErrExists = errors.New("virtual server already exists")
)

// Service is what the kernel has for one virtual server.
type Service struct {
	VS netip.AddrPort
	// RS are the real servers traffic is spread over, sorted.
	RS []netip.AddrPort
	// Intact reports that every part the backend installs for VS is
	// present (rules, map, address or route). When false the daemon
	// deletes and re-adds the virtual server.
	Intact bool
}

// Backend programs one kind of kernel virtual server. Every method talks to
// the kernel and takes a context. Implementations are used from one
// goroutine at a time.
type Backend interface {
	// Name is "ipvs", "nftables" or "fake".
	Name() string
	// Get returns the kernel's state of vs, or ErrNotFound.
	Get(ctx context.Context, vs netip.AddrPort) (Service, error)
	// Add creates vs with no real servers, plus what the host's own
	// processes need to reach it (a local address or a route; via is a
	// real server whose path the VIP may share). ErrExists if vs exists.
	Add(ctx context.Context, vs netip.AddrPort, via netip.Addr) error
	// Set replaces the real servers of vs in one step. ErrNotFound if vs
	// does not exist.
	Set(ctx context.Context, vs netip.AddrPort, rs []netip.AddrPort) error
	// Delete removes vs, its real servers and what Add added for it.
	// ErrNotFound if nothing of vs exists.
	Delete(ctx context.Context, vs netip.AddrPort) error
}

// sortedRS returns a sorted copy of rs.
func sortedRS(rs []netip.AddrPort) []netip.AddrPort {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

// checkSet validates a real server list for Set: valid addresses, no
// duplicates.
func checkSet(rs []netip.AddrPort) error {
	seen := make(map[netip.AddrPort]bool, len(rs))
	for _, r := range rs {
		if err := podspec.CheckAddr("real server", r); err != nil {
			return err
		}
		if seen[r] {
			return &DuplicateError{Addr: r}
		}
		seen[r] = true
	}
	return nil
}

// DuplicateError reports a real server given twice.
type DuplicateError struct{ Addr netip.AddrPort }

func (e *DuplicateError) Error() string {
	return "real server " + e.Addr.String() + " given twice"
}
