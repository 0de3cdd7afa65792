package lvscare

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	testVS = netip.MustParseAddrPort("10.103.97.2:6443")
	rs1    = netip.MustParseAddrPort("192.168.7.11:6443")
	rs2    = netip.MustParseAddrPort("192.168.7.12:6443")
	rs3    = netip.MustParseAddrPort("192.168.7.13:6443")
)

// scripted is a prober whose answers the test sets per real server.
type scripted struct {
	mu    sync.Mutex
	down  map[netip.AddrPort]bool
	block map[netip.AddrPort]string // "ctx": until ctx ends; "forever": ignores ctx
	calls map[netip.AddrPort]int
	free  chan struct{} // releases "forever" probes
}

func newScripted() *scripted {
	return &scripted{down: map[netip.AddrPort]bool{}, block: map[netip.AddrPort]string{},
		calls: map[netip.AddrPort]int{}, free: make(chan struct{})}
}

func (s *scripted) set(r netip.AddrPort, up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[r] = !up
}

func (s *scripted) setBlock(r netip.AddrPort, how string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block[r] = how
}

func (s *scripted) count(r netip.AddrPort) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[r]
}

func (s *scripted) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

func (s *scripted) probe(ctx context.Context, r netip.AddrPort) error {
	s.mu.Lock()
	s.calls[r]++
	down, how := s.down[r], s.block[r]
	s.mu.Unlock()
	switch how {
	case "ctx":
		<-ctx.Done()
		return ctx.Err()
	case "forever":
		<-s.free
		return errors.New("released")
	}
	if down {
		return fmt.Errorf("%s: connection refused", r)
	}
	return nil
}

type rig struct {
	d     *Daemon
	fake  *Fake
	clock *fakeClock
	probe *scripted
}

func newRig(t *testing.T, rise, fall int) *rig {
	t.Helper()
	r := &rig{fake: NewFake(), clock: newFakeClock(), probe: newScripted()}
	d, err := NewDaemon(Config{
		VS: testVS, RS: []netip.AddrPort{rs1, rs2, rs3},
		Interval: time.Second, Timeout: time.Second, Rise: rise, Fall: fall, Resync: 5 * time.Second,
		Backend: r.fake, Probe: r.probe.probe, Clock: r.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	t.Cleanup(func() { close(r.probe.free) })
	return r
}

func (r *rig) round(t *testing.T) {
	t.Helper()
	if err := r.d.Round(context.Background()); err != nil {
		t.Fatalf("round: %v", err)
	}
}

func line(rs ...netip.AddrPort) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return testVS.String() + " -> " + strings.Join(parts, ",") + "\n"
}

func TestRoundOutAfterFallBackAfterRise(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ rise, fall int }{{1, 1}, {1, 2}, {2, 3}, {3, 1}} {
		t.Run(fmt.Sprintf("rise%d_fall%d", tc.rise, tc.fall), func(t *testing.T) {
			t.Parallel()
			r := newRig(t, tc.rise, tc.fall)
			r.round(t)
			if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
				t.Fatalf("after the first round (-want +got):\n%s", diff)
			}
			// rs2 fails: it stays for fall-1 rounds, then leaves.
			r.probe.set(rs2, false)
			var got, want []string
			for i := 1; i <= tc.fall+1; i++ {
				r.round(t)
				got = append(got, r.fake.Dump())
				if i < tc.fall {
					want = append(want, line(rs1, rs2, rs3))
				} else {
					want = append(want, line(rs1, rs3))
				}
			}
			// rs2 recovers: it returns after rise successes.
			r.probe.set(rs2, true)
			for i := 1; i <= tc.rise+1; i++ {
				r.round(t)
				got = append(got, r.fake.Dump())
				if i < tc.rise {
					want = append(want, line(rs1, rs3))
				} else {
					want = append(want, line(rs1, rs2, rs3))
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kernel state round by round (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundFlappingServerNeedsConsecutiveResults(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2, 2)
	r.round(t)
	// fail, ok, fail, ok: never two failures in a row, so rs1 stays.
	for i := range 4 {
		r.probe.set(rs1, i%2 == 1)
		r.round(t)
	}
	if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestAllDownLeavesVirtualServerEmpty(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 1)
	r.round(t)
	for _, x := range []netip.AddrPort{rs1, rs2, rs3} {
		r.probe.set(x, false)
	}
	r.round(t)
	if diff := cmp.Diff(line(), r.fake.Dump()); diff != "" {
		t.Errorf("with every server down the VS stays, empty (-want +got):\n%s", diff)
	}
	r.probe.set(rs3, true)
	r.round(t)
	if diff := cmp.Diff(line(rs3), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestResyncRestoresExternalChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(f *Fake)
	}{
		{"flushed", func(f *Fake) { f.Flush() }},
		{"broken", func(f *Fake) { f.Break(testVS) }},
		{"emptied", func(f *Fake) { _ = f.Set(context.Background(), testVS, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, 1, 2)
			r.round(t)
			tc.damage(r.fake)
			damaged := r.fake.Dump()
			r.clock.Advance(time.Second)
			r.round(t) // no resync due yet: the cache is trusted
			if got := r.fake.Dump(); got != damaged {
				t.Fatalf("repaired before a resync was due: %q", got)
			}
			r.clock.Advance(4 * time.Second)
			r.round(t)
			if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
				t.Errorf("after the resync (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorForcesFullResync(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 1)
	r.round(t)
	gets := r.fake.Calls("Get")
	r.fake.FailNext("Set", errors.New("netlink: resource busy"))
	r.fake.FailNext("Get", errors.New("netlink: interrupted"))
	r.probe.set(rs1, false)
	// The Set fails, then the full resync it triggers fails too.
	if err := r.d.Round(context.Background()); err == nil || !strings.Contains(err.Error(), "resource busy") {
		t.Fatalf("round error = %v, want the backend's error", err)
	}
	if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	r.round(t) // no time passed: only the errors make it read the kernel again
	if got := r.fake.Calls("Get"); got != gets+2 {
		t.Errorf("Get calls: %d, want %d (one failed, one resync)", got, gets+2)
	}
	if diff := cmp.Diff(line(rs2, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestBlockedProbeDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 2)
	r.probe.setBlock(rs2, "ctx")
	done := make(chan error, 1)
	go func() { done <- r.d.Round(context.Background()) }()
	// rs1 and rs3 are applied while rs2's probe still hangs.
	waitFor(t, "rs1 and rs3 in the kernel", 10*time.Second, func() bool { return r.fake.Dump() == line(rs1, rs3) })
	select {
	case err := <-done:
		t.Fatalf("round ended before rs2's probe timed out: %v", err)
	default:
	}
	r.clock.Advance(time.Second) // rs2's probe times out
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("round did not end after the probe timeout")
	}
	if diff := cmp.Diff(line(rs1, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestProbeIgnoringContextIsNotRestarted(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 1)
	r.round(t)
	r.probe.setBlock(rs3, "forever")
	for range 3 {
		done := make(chan error, 1)
		go func() { done <- r.d.Round(context.Background()) }()
		waitFor(t, "round waiting on rs3's timeout", 10*time.Second, func() bool {
			select {
			case err := <-done:
				done <- err
				return true
			default:
			}
			return r.clock.Waiters() > 0 && r.probe.total() > 0
		})
		r.clock.Advance(time.Second)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := r.probe.count(rs3); got != 2 {
		t.Errorf("rs3 probed %d times, want 2 (one good, one that never returns)", got)
	}
	if diff := cmp.Diff(line(rs1, rs2), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestOnceDecidesByOneProbe(t *testing.T) {
	t.Parallel()
	r := newRig(t, 3, 3)
	r.probe.set(rs2, false)
	if err := r.d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(line(rs1, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestOnceCreatesEmptyServiceWhenAllDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 2)
	for _, x := range []netip.AddrPort{rs1, rs2, rs3} {
		r.probe.set(x, false)
	}
	if err := r.d.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(line(), r.fake.Dump()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// idle waits until the running loop sleeps between rounds after n probes.
func (r *rig) idle(t *testing.T, probes int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("loop idle after %d probes", probes), 10*time.Second, func() bool {
		return r.probe.total() >= probes && r.clock.Waiters() == 1
	})
}

func TestRunStartsFromKernelAndLeavesRulesOnStop(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 2)
	ctx := context.Background()
	if err := r.fake.Add(ctx, testVS, rs1.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := r.fake.Set(ctx, testVS, []netip.AddrPort{rs1, rs2, rs3}); err != nil {
		t.Fatal(err)
	}
	r.probe.set(rs2, false)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx) }()

	r.idle(t, 3)
	// The kernel had rs2, so it counts as up: one failure is not enough.
	if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("after one round (-want +got):\n%s", diff)
	}
	r.clock.Advance(time.Second)
	r.idle(t, 6)
	if diff := cmp.Diff(line(rs1, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("after two rounds (-want +got):\n%s", diff)
	}
	r.probe.set(rs2, true)
	r.clock.Advance(time.Second)
	r.idle(t, 9)
	if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("after recovery (-want +got):\n%s", diff)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("stopping must leave the rules (-want +got):\n%s", diff)
	}
}

func TestRunResyncsOnSchedule(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	r.idle(t, 3)
	r.fake.Flush()
	for i := 1; i <= 5; i++ {
		r.clock.Advance(time.Second)
		r.idle(t, 3*(i+1))
	}
	if diff := cmp.Diff(line(rs1, rs2, rs3), r.fake.Dump()); diff != "" {
		t.Errorf("5 s after an external flush (-want +got):\n%s", diff)
	}
}

func TestCleanAndStatusOnFake(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, 2)
	r.probe.set(rs3, false)
	r.round(t)
	ctx := context.Background()
	svc, err := r.fake.Get(ctx, testVS)
	if err != nil {
		t.Fatal(err)
	}
	want := "virtual server 10.103.97.2:6443 (fake)\n  backend not pinned\n  -> 192.168.7.11:6443\n  -> 192.168.7.12:6443\n"
	if diff := cmp.Diff(want, FormatStatus(StatusReport{Service: svc, Backend: r.fake.Name()})); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if err := r.fake.Delete(ctx, testVS); err != nil {
		t.Fatal(err)
	}
	if _, err := r.fake.Get(ctx, testVS); !errors.Is(err, ErrNotFound) {
		t.Errorf("status after clean: %v, want ErrNotFound", err)
	}
	if err := r.fake.Delete(ctx, testVS); !errors.Is(err, ErrNotFound) {
		t.Errorf("second clean: %v, want ErrNotFound", err)
	}
	if got := FormatStatus(StatusReport{Service: Service{VS: testVS, Intact: true}, Backend: "nftables"}); !strings.Contains(got, "connections are refused") {
		t.Errorf("empty status: %q", got)
	}
}

func TestFakeEnforcesKernelRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other := netip.MustParseAddrPort("10.103.97.3:6443")
	for _, tc := range []struct {
		name string
		op   func(f *Fake) error
		want error // nil: any error
	}{
		{"add twice", func(f *Fake) error { return f.Add(ctx, testVS, rs1.Addr()) }, ErrExists},
		{"set unknown", func(f *Fake) error { return f.Set(ctx, other, []netip.AddrPort{rs1}) }, ErrNotFound},
		{"delete unknown", func(f *Fake) error { return f.Delete(ctx, other) }, ErrNotFound},
		{"get unknown", func(f *Fake) error { _, err := f.Get(ctx, other); return err }, ErrNotFound},
		{"duplicate real server", func(f *Fake) error { return f.Set(ctx, testVS, []netip.AddrPort{rs1, rs1}) }, nil},
		{"real server without port", func(f *Fake) error {
			return f.Set(ctx, testVS, []netip.AddrPort{netip.AddrPortFrom(rs1.Addr(), 0)})
		}, nil},
		{"IPv6 virtual server", func(f *Fake) error { return f.Add(ctx, netip.MustParseAddrPort("[::1]:80"), rs1.Addr()) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := NewFake()
			if err := f.Add(ctx, testVS, rs1.Addr()); err != nil {
				t.Fatal(err)
			}
			err := tc.op(f)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(line(), f.Dump()); diff != "" {
				t.Errorf("a refused change must change nothing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewDaemonRejectsBadConfig(t *testing.T) {
	t.Parallel()
	good := Config{VS: testVS, RS: []netip.AddrPort{rs1}, Interval: time.Second, Timeout: time.Second,
		Rise: 1, Fall: 1, Resync: time.Second, Backend: NewFake(), Probe: newScripted().probe}
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
	}{
		{"no rs", func(c *Config) { c.RS = nil }},
		{"dup rs", func(c *Config) { c.RS = []netip.AddrPort{rs1, rs1} }},
		{"zero interval", func(c *Config) { c.Interval = 0 }},
		{"zero fall", func(c *Config) { c.Fall = 0 }},
		{"no backend", func(c *Config) { c.Backend = nil }},
		{"bad vs", func(c *Config) { c.VS = netip.AddrPort{} }},
	} {
		c := good
		tc.mod(&c)
		if _, err := NewDaemon(c); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := NewDaemon(good); err != nil {
		t.Errorf("good config: %v", err)
	}
}
