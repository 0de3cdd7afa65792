package lvscare

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/sealflow/sealflow/internal/testutil"
	"github.com/sealflow/sealflow/lvscare/podspec"
)

// addForeignTable puts a table of someone else's in ns, which lvscare must
// never touch.
func addForeignTable(t *testing.T, ns *testNS) {
	t.Helper()
	c := ns.nft(t)
	tb := c.AddTable(&nftables.Table{Name: "keep", Family: nftables.TableFamilyIPv4})
	ch := c.AddChain(&nftables.Chain{Name: "out", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{203, 0, 113, 9}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("add foreign table: %v", err)
	}
}

func TestNFTablesBackend(t *testing.T) {
	needRoot(t)
	t.Parallel()
	ns := newNS(t, "be")
	ipCmd(t, "-n", ns.name, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb")
	ipCmd(t, "-n", ns.name, "addr", "add", "192.168.77.2/24", "dev", "va")
	ipCmd(t, "-n", ns.name, "link", "set", "va", "up")
	ipCmd(t, "-n", ns.name, "link", "set", "vb", "up")
	addForeignTable(t, ns)
	before := ns.dump(t)

	b, err := NewNFTables(int(ns.h))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	vsA := netip.MustParseAddrPort("10.103.97.2:6443")
	vsB := netip.MustParseAddrPort("10.103.97.3:80")
	m := func(s ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, x := range s {
			out = append(out, netip.MustParseAddrPort(x))
		}
		return out
	}

	if _, err := b.Get(ctx, vsA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Add: %v, want ErrNotFound", err)
	}
	if err := b.Set(ctx, vsA, m("192.168.77.11:6443")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Set before Add: %v, want ErrNotFound", err)
	}
	via := netip.MustParseAddr("192.168.77.11")
	for _, vs := range []netip.AddrPort{vsA, vsB} {
		if err := b.Add(ctx, vs, via); err != nil {
			t.Fatalf("Add %s: %v", vs, err)
		}
	}
	if err := b.Add(ctx, vsA, via); !errors.Is(err, ErrExists) {
		t.Fatalf("second Add: %v, want ErrExists", err)
	}
	if err := b.Set(ctx, vsA, m("192.168.77.11:6443", "192.168.77.11:6443")); err == nil {
		t.Fatal("Set with a duplicate: no error")
	}
	steps := [][]netip.AddrPort{
		m("192.168.77.13:6443", "192.168.77.11:6443", "192.168.77.12:6443"),
		m("192.168.77.12:6443"),
		nil,
		m("192.168.77.11:6443", "192.168.77.12:6443"),
	}
	for _, rs := range steps {
		if err := b.Set(ctx, vsA, rs); err != nil {
			t.Fatalf("Set %v: %v", rs, err)
		}
		got, err := b.Get(ctx, vsA)
		if err != nil {
			t.Fatal(err)
		}
		want := Service{VS: vsA, RS: sortedRS(rs), Intact: true}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("after Set %v (-want +got):\n%s", rs, diff)
		}
	}
	gotB, err := b.Get(ctx, vsB)
	if err != nil || !gotB.Intact || len(gotB.RS) != 0 {
		t.Errorf("the other VS: %+v, %v; want intact and empty", gotB, err)
	}

	// Deleting the route by hand makes the service incomplete.
	route, err := b.routes.find(ctx, vsA.Addr())
	if err != nil || route == nil {
		t.Fatalf("route to the VIP: %v, %v", route, err)
	}
	if route.LinkIndex == 0 || route.Gw != nil {
		t.Errorf("route to the VIP %+v: want it on the real servers' link", route)
	}
	ipCmd(t, "-n", ns.name, "route", "del", "10.103.97.2/32")
	if got, err := b.Get(ctx, vsA); err != nil || got.Intact {
		t.Errorf("Get without the route: %+v, %v; want not intact", got, err)
	}

	if err := b.Delete(ctx, vsA); err != nil {
		t.Fatalf("Delete A: %v", err)
	}
	if gotB, err := b.Get(ctx, vsB); err != nil || !gotB.Intact {
		t.Errorf("B after deleting A: %+v, %v; want intact", gotB, err)
	}
	if err := b.Delete(ctx, vsA); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, vsB); err != nil {
		t.Fatalf("Delete B: %v", err)
	}
	if diff := cmp.Diff(before, ns.dump(t)); diff != "" {
		t.Errorf("rules and routes after deleting everything (-before +after):\n%s", diff)
	}
}

// lab is a bridge with three masters and a node, each in its own network
// namespace.
type lab struct {
	sw, node *testNS
	masters  []*testNS
	servers  []*proc
	addrs    []string
	// lockDir holds the daemons' locks and backend pins (the machine's
	// /run/sealflow is not the tests').
	lockDir string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{sw: newNS(t, "sw"), node: newNS(t, "node"), lockDir: t.TempDir()}
	ipCmd(t, "-n", l.sw.name, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", l.sw.name, "link", "set", "br0", "up")
	plug := func(ns *testNS, port, addr string) {
		ipCmd(t, "-n", l.sw.name, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
		ipCmd(t, "-n", l.sw.name, "link", "set", port, "master", "br0", "up")
		ipCmd(t, "-n", ns.name, "addr", "add", addr+"/24", "dev", "eth0")
		ipCmd(t, "-n", ns.name, "link", "set", "eth0", "up")
	}
	plug(l.node, "pnode", "192.168.77.2")
	for i := range 3 {
		ns := newNS(t, fmt.Sprintf("m%d", i+1))
		addr := fmt.Sprintf("192.168.77.%d", 11+i)
		plug(ns, fmt.Sprintf("pm%d", i+1), addr)
		l.masters = append(l.masters, ns)
		l.addrs = append(l.addrs, addr)
	}
	l.servers = make([]*proc, 3)
	return l
}

func (l *lab) start(t *testing.T, i int) {
	t.Helper()
	l.servers[i] = startHelper(t, l.masters[i], "server", []string{fmt.Sprintf("LVSCARE_NAME=m%d", i+1)}, true)
}

func (l *lab) stop(i int) { l.servers[i].kill() }

func (l *lab) care(t *testing.T, o podspec.Options) *proc {
	t.Helper()
	o.LockDir = l.lockDir
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return startHelper(t, l.node, "care", []string{"LVSCARE_OPTIONS=" + string(js)}, false)
}

func (l *lab) clean(t *testing.T, vs netip.AddrPort) {
	t.Helper()
	p := startHelper(t, l.node, "clean", []string{"LVSCARE_VS=" + vs.String(), "LVSCARE_MODE=nftables", "LVSCARE_LOCKDIR=" + l.lockDir}, false)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("clean %s: %v\n%s", vs, p.err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("clean %s: still running after 30s", vs)
	}
}

// client makes HTTP(S) requests from the node namespace, one connection
// each.
func (l *lab) client() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return l.node.dial(ctx, addr) },
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
	}
}

// requests makes n requests to url and returns who answered each, or the
// first error.
func (l *lab) requests(url string, n int) ([]string, error) {
	c := l.client()
	var who []string
	for i := range n {
		resp, err := c.Get(url)
		if err != nil {
			return who, fmt.Errorf("request %d of %d: %w", i+1, n, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return who, fmt.Errorf("request %d of %d: %w", i+1, n, err)
		}
		who = append(who, string(body))
	}
	return who, nil
}

func distinct(who []string) []string {
	set := map[string]bool{}
	for _, w := range who {
		set[w] = true
	}
	var out []string
	for w := range set {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

// eventually retries f until it returns nil or limit passes.
func eventually(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	testutil.Eventually(t, what, limit, 50*time.Millisecond, f)
}

func reachAll(l *lab, url string, want []string) func() error {
	return func() error {
		who, err := l.requests(url, 30)
		if err != nil {
			return err
		}
		if got := distinct(who); !cmp.Equal(want, got) {
			return fmt.Errorf("answered by %v, want %v", got, want)
		}
		return nil
	}
}

func TestNFTablesScenario(t *testing.T) {
	needRoot(t)
	t.Parallel()
	l := newLab(t)
	addForeignTable(t, l.node)
	before := l.node.dump(t)
	for i := range 3 {
		l.start(t, i)
	}

	vsA := netip.MustParseAddrPort("10.103.97.2:6443") // https probes of /healthz (defaults)
	vsB := netip.MustParseAddrPort("10.103.97.3:80")   // http probes, the original LVScare's flags
	optsA := podspec.DefaultOptions()
	optsA.VS, optsA.Mode = vsA, podspec.ModeNFTables
	optsB := podspec.DefaultOptions()
	optsB.VS, optsB.Mode = vsB, podspec.ModeNFTables
	optsB.Health.Scheme, optsB.Health.Path = "http", "/"
	for _, a := range l.addrs {
		optsA.RS = append(optsA.RS, netip.MustParseAddrPort(a+":6443"))
		optsB.RS = append(optsB.RS, netip.MustParseAddrPort(a+":80"))
	}
	careA := l.care(t, optsA)
	careB := l.care(t, optsB)
	urlA, urlB := "https://"+vsA.String()+"/", "http://"+vsB.String()+"/"
	all := []string{"m1", "m2", "m3"}

	eventually(t, "VIP A reaches all three masters", 15*time.Second, reachAll(l, urlA, all))
	eventually(t, "VIP B reaches all three masters", 15*time.Second, reachAll(l, urlB, all))

	// One master stops: within interval×fall + 2 s it is out and 50
	// requests in a row succeed.
	l.stop(0)
	limit := optsA.Interval*time.Duration(optsA.Fall) + 2*time.Second
	eventually(t, "m1 out of VIP A", limit, func() error {
		who, err := l.requests(urlA, 50)
		if err != nil {
			return err
		}
		if got := distinct(who); !cmp.Equal([]string{"m2", "m3"}, got) {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})

	// SIGTERM leaves the rules: traffic keeps flowing while no daemon runs.
	if err := careA.term(t); err != nil {
		t.Fatalf("care A after SIGTERM: %v\n%s", err, careA.out.String())
	}
	if who, err := l.requests(urlA, 10); err != nil || !cmp.Equal([]string{"m2", "m3"}, distinct(who)) {
		t.Fatalf("with the daemon stopped: answered by %v, %v; want m2 and m3", distinct(who), err)
	}
	careA = l.care(t, optsA)

	// Someone deletes lvscare's table: the resync puts it back.
	c := l.node.nft(t)
	c.DelTable(&nftables.Table{Name: NFTTable, Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil {
		t.Fatalf("delete table %s: %v", NFTTable, err)
	}
	eventually(t, "VIP A back after an external delete", 2*optsA.Resync+5*time.Second, reachAll(l, urlA, []string{"m2", "m3"}))
	eventually(t, "VIP B back after an external delete", 2*optsB.Resync+5*time.Second, reachAll(l, urlB, []string{"m2", "m3"}))

	// Every master down: connections are refused at once, nothing hangs.
	l.stop(1)
	l.stop(2)
	b, err := NewNFTables(int(l.node.h))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	eventually(t, "VIP A empty", 15*time.Second, func() error {
		svc, err := b.Get(context.Background(), vsA)
		if err != nil {
			return err
		}
		if len(svc.RS) != 0 || !svc.Intact {
			return fmt.Errorf("status %+v", svc)
		}
		return nil
	})
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := l.node.dial(ctx, vsA.String())
		cancel()
		if err == nil {
			conn.Close()
			t.Fatal("connected to VIP A with every master down")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("VIP A with every master down: %v, want connection refused within 1s", err)
		}
	}

	// They come back: all three are used again.
	for i := range 3 {
		l.start(t, i)
	}
	eventually(t, "VIP A reaches all three again", 15*time.Second, reachAll(l, urlA, all))
	eventually(t, "VIP B reaches all three again", 15*time.Second, reachAll(l, urlB, all))

	// clean --vs removes only its own VS.
	if err := careB.term(t); err != nil {
		t.Fatalf("care B after SIGTERM: %v", err)
	}
	l.clean(t, vsB)
	if _, err := b.Get(context.Background(), vsB); !errors.Is(err, ErrNotFound) {
		t.Errorf("VIP B after its clean: %v, want ErrNotFound", err)
	}
	if who, err := l.requests(urlA, 10); err != nil || !cmp.Equal(all, distinct(who)) {
		t.Errorf("VIP A after cleaning B: answered by %v, %v", distinct(who), err)
	}

	if err := careA.term(t); err != nil {
		t.Fatalf("care A after SIGTERM: %v", err)
	}
	l.clean(t, vsA)
	if diff := cmp.Diff(before, l.node.dump(t)); diff != "" {
		t.Errorf("clean must leave rules and routes as they were (-before +after):\n%s", diff)
	}
	if strings.Contains(careA.out.String(), "panic") {
		t.Errorf("daemon log:\n%s", careA.out.String())
	}
}

// TestNFTablesLoopbackServers is the original LVScare's own example: real
// servers on 127.0.0.1 ports, a VIP routed as a local address.
func TestNFTablesLoopbackServers(t *testing.T) {
	needRoot(t)
	t.Parallel()
	ns := newNS(t, "lo")
	before := ns.dump(t)
	var servers []*http.Server
	o := podspec.DefaultOptions()
	o.VS, o.Mode = netip.MustParseAddrPort("10.103.97.12:6443"), podspec.ModeNFTables
	o.Health.Scheme, o.Health.Path = "http", "/"
	for i := range 3 {
		l, err := ns.listen(fmt.Sprintf("127.0.0.1:%d", 18081+i))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("s%d", i+1)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		servers = append(servers, srv)
		o.RS = append(o.RS, netip.MustParseAddrPort(l.Addr().String()))
	}
	l := &lab{node: ns, lockDir: t.TempDir()}
	care := l.care(t, o)
	url := "http://" + o.VS.String() + "/"
	eventually(t, "VIP reaches all three", 15*time.Second, reachAll(l, url, []string{"s1", "s2", "s3"}))
	servers[1].Close()
	eventually(t, "s2 out", 15*time.Second, reachAll(l, url, []string{"s1", "s3"}))
	if err := care.term(t); err != nil {
		t.Fatalf("care after SIGTERM: %v", err)
	}
	p := startHelper(t, ns, "clean", []string{"LVSCARE_VS=" + o.VS.String(), "LVSCARE_MODE=auto", "LVSCARE_LOCKDIR=" + l.lockDir}, false)
	<-p.done
	if p.err != nil {
		t.Fatalf("clean: %v\n%s", p.err, p.out.String())
	}
	if diff := cmp.Diff(before, ns.dump(t)); diff != "" {
		t.Errorf("clean must leave rules and routes as they were (-before +after):\n%s", diff)
	}
}

// The rules phase (--run-once, mode auto) pins nftables in the lock
// directory; the daemon started after it with --mode ipvs is refused by
// the pin (not by the missing IPVS), in mode auto it keeps the rules; clean
// removes rules and pin.
func TestNFTablesPin(t *testing.T) {
	needRoot(t)
	t.Parallel()
	ns := newNS(t, "pin")
	before := ns.dump(t)
	ln, err := ns.listen("127.0.0.1:18091")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "s1") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	l := &lab{node: ns, lockDir: t.TempDir()}
	o := podspec.DefaultOptions()
	o.VS, o.RS = netip.MustParseAddrPort("10.103.97.14:6443"), []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:18091")}
	o.Health.Scheme, o.Health.Path = "http", "/"
	wait := func(p *proc) error {
		t.Helper()
		select {
		case <-p.done:
			return p.err
		case <-time.After(30 * time.Second):
			t.Fatal("helper still running after 30s")
		}
		return nil
	}

	rules := o
	rules.RunOnce = true
	if p := l.care(t, rules); wait(p) != nil {
		t.Fatalf("rules phase: %v\n%s", p.err, p.out.String())
	}
	url := "http://" + o.VS.String() + "/"
	eventually(t, "the VIP after the rules phase", 5*time.Second, reachAll(l, url, []string{"s1"}))
	if b, err := os.ReadFile(PinFile(l.lockDir, o.VS)); err != nil || string(b) != "nftables\n" {
		t.Fatalf("pin after the rules phase: %q, %v; want nftables", b, err)
	}

	ipvs := o
	ipvs.Mode = podspec.ModeIPVS
	p := l.care(t, ipvs)
	if err := wait(p); err == nil || !strings.Contains(p.out.String(), "held by the nftables backend") {
		t.Errorf("daemon with --mode ipvs over the nftables pin: %v\n%s\nwant it refused by the pin", err, p.out.String())
	}

	daemon := l.care(t, o)
	eventually(t, "the daemon in mode auto on the pinned backend", 10*time.Second, func() error {
		if out := daemon.out.String(); !strings.Contains(out, "pinned to\" vs=10.103.97.14:6443 backend=nftables") {
			return fmt.Errorf("daemon log:\n%s", out)
		}
		return nil
	})
	eventually(t, "the VIP with the daemon in mode auto", 5*time.Second, reachAll(l, url, []string{"s1"}))
	if err := daemon.term(t); err != nil {
		t.Fatalf("daemon after SIGTERM: %v\n%s", err, daemon.out.String())
	}

	c := startHelper(t, ns, "clean", []string{"LVSCARE_VS=" + o.VS.String(), "LVSCARE_MODE=auto", "LVSCARE_LOCKDIR=" + l.lockDir}, false)
	if err := wait(c); err != nil {
		t.Fatalf("clean: %v\n%s", err, c.out.String())
	}
	if _, err := os.Stat(PinFile(l.lockDir, o.VS)); !os.IsNotExist(err) {
		t.Errorf("the pin is left after clean (%v)", err)
	}
	if diff := cmp.Diff(before, ns.dump(t)); diff != "" {
		t.Errorf("clean must leave rules and routes as they were (-before +after):\n%s", diff)
	}
}
