package lvscare

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// Fake is an in-memory Backend that enforces the kernel's rules: adding a
// virtual server twice, setting or deleting an unknown one, a duplicate or
// malformed real server are errors, as they are for IPVS. It is safe for
// concurrent use. The zero value is not usable; call NewFake.
type Fake struct {
	mu    sync.Mutex
	svcs  map[netip.AddrPort]*fakeService
	fail  map[string]error // method name → error for its next call
	calls map[string]int
}

type fakeService struct {
	rs     []netip.AddrPort
	via    netip.Addr
	broken bool
}

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{svcs: map[netip.AddrPort]*fakeService{}, fail: map[string]error{}, calls: map[string]int{}}
}

// Name returns "fake".
func (f *Fake) Name() string { return "fake" }

func (f *Fake) enter(ctx context.Context, method string) error {
	f.calls[method]++
	if err := ctx.Err(); err != nil {
		return err
	}
	if err, ok := f.fail[method]; ok {
		delete(f.fail, method)
		return err
	}
	return nil
}

// Get implements Backend.
func (f *Fake) Get(ctx context.Context, vs netip.AddrPort) (Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Get"); err != nil {
		return Service{}, err
	}
	s, ok := f.svcs[vs]
	if !ok {
		return Service{}, fmt.Errorf("get %s: %w", vs, ErrNotFound)
	}
	return Service{VS: vs, RS: slices.Clone(s.rs), Intact: !s.broken}, nil
}

// Add implements Backend.
func (f *Fake) Add(ctx context.Context, vs netip.AddrPort, via netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Add"); err != nil {
		return err
	}
	if err := podspec.CheckAddr("virtual server", vs); err != nil {
		return err
	}
	if _, ok := f.svcs[vs]; ok {
		return fmt.Errorf("add %s: %w", vs, ErrExists)
	}
	f.svcs[vs] = &fakeService{via: via}
	return nil
}

// Set implements Backend.
func (f *Fake) Set(ctx context.Context, vs netip.AddrPort, rs []netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Set"); err != nil {
		return err
	}
	s, ok := f.svcs[vs]
	if !ok {
		return fmt.Errorf("set %s: %w", vs, ErrNotFound)
	}
	if err := checkSet(rs); err != nil {
		return fmt.Errorf("set %s: %w", vs, err)
	}
	s.rs = sortedRS(rs)
	return nil
}

// Delete implements Backend.
func (f *Fake) Delete(ctx context.Context, vs netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(ctx, "Delete"); err != nil {
		return err
	}
	if _, ok := f.svcs[vs]; !ok {
		return fmt.Errorf("delete %s: %w", vs, ErrNotFound)
	}
	delete(f.svcs, vs)
	return nil
}

// FailNext makes the next call of method ("Get", "Add", "Set", "Delete")
// return err.
func (f *Fake) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

// Calls returns how many times method was called.
func (f *Fake) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Flush removes every virtual server, as `nft flush ruleset` or
// `ipvsadm -C` by someone else would.
func (f *Fake) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.svcs)
}

// Break marks vs as incomplete (as if its route or address were removed
// by someone else). It reports whether vs exists.
func (f *Fake) Break(vs netip.AddrPort) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.svcs[vs]
	if ok {
		s.broken = true
	}
	return ok
}

// Dump renders the state, one virtual server a line, sorted:
// "VS -> RS,RS" (with " broken" when incomplete).
func (f *Fake) Dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]netip.AddrPort, 0, len(f.svcs))
	for k := range f.svcs {
		keys = append(keys, k)
	}
	keys = sortedRS(keys)
	var b strings.Builder
	for _, k := range keys {
		s := f.svcs[k]
		parts := make([]string, len(s.rs))
		for i, r := range s.rs {
			parts[i] = r.String()
		}
		fmt.Fprintf(&b, "%s -> %s", k, strings.Join(parts, ","))
		if s.broken {
			b.WriteString(" broken")
		}
		b.WriteString("\n")
	}
	return b.String()
}
