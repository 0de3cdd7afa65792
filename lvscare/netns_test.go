package lvscare

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var nsSeq atomic.Int64

// needRoot skips tests that create namespaces and kernel rules when not
// root (make test runs as root and runs them).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and nftables rules")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (package iproute2)")
	}
}

// ipCmd runs ip with args and fails the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testNS is a network namespace the test created; removed in Cleanup.
type testNS struct {
	name string
	h    netns.NsHandle
}

func newNS(t *testing.T, role string) *testNS {
	t.Helper()
	name := fmt.Sprintf("lvs%d-%d-%s", os.Getpid(), nsSeq.Add(1), role)
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return &testNS{name: name, h: h}
}

// dial connects to addr from inside the namespace: the socket is created
// on a thread switched into it.
func (n *testNS) dial(ctx context.Context, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked if restoring fails: the thread then dies with the goroutine
		orig, err := netns.Get()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(n.h); err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// listen opens a TCP listener inside the namespace.
func (n *testNS) listen(addr string) (net.Listener, error) {
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked if restoring fails: the thread then dies with the goroutine
		orig, err := netns.Get()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(n.h); err != nil {
			ch <- res{nil, err}
			return
		}
		l, err := net.Listen("tcp", addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- res{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

// nft returns an nftables connection into the namespace.
func (n *testNS) nft(t *testing.T) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(n.h)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dump renders the namespace's whole nftables ruleset, every IPv4 route of
// every table and every IPv4 address, for before/after comparisons (IPv6
// link-local addresses come and go on their own; lvscare is IPv4 only).
func (n *testNS) dump(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	c := n.nft(t)
	tables, err := c.ListTables()
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatalf("list chains: %v", err)
	}
	for _, tb := range tables {
		fmt.Fprintf(&b, "table %d %s\n", tb.Family, tb.Name)
		sets, err := c.GetSets(tb)
		if err != nil {
			t.Fatalf("list sets: %v", err)
		}
		for _, s := range sets {
			elems, err := c.GetSetElements(s)
			if err != nil {
				t.Fatalf("list elements: %v", err)
			}
			fmt.Fprintf(&b, "  set %s %d elements\n", s.Name, len(elems))
		}
		for _, ch := range chains {
			if ch.Table.Name != tb.Name || ch.Table.Family != tb.Family {
				continue
			}
			fmt.Fprintf(&b, "  chain %s %s\n", ch.Name, ch.Type)
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatalf("list rules: %v", err)
			}
			for _, r := range rules {
				fmt.Fprint(&b, "    rule")
				for _, e := range r.Exprs {
					fmt.Fprintf(&b, " %T%+v", e, e)
				}
				fmt.Fprintln(&b)
			}
		}
	}
	h, err := netlink.NewHandleAt(n.h)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	var lines []string
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table %d type %d proto %d %s", r.Table, r.Type, r.Protocol, r))
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("list addresses: %v", err)
	}
	for _, a := range addrs {
		lines = append(lines, fmt.Sprintf("addr %d %s", a.LinkIndex, a.IPNet))
	}
	sort.Strings(lines)
	b.WriteString(strings.Join(lines, "\n"))
	return b.String()
}

// proc is a helper process in a namespace.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
	err  error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHelper runs the test binary as helper role inside ns. With
// waitReady it waits for the "ready" line.
func startHelper(t *testing.T, ns *testNS, role string, env []string, waitReady bool) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	p := &proc{cmd: cmd, out: &syncBuf{}, done: make(chan struct{})}
	cmd.Stderr = p.out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s helper in %s: %v", role, ns.name, err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		ready <- false
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() && p.out.String() != "" {
			t.Logf("%s helper in %s said:\n%s", role, ns.name, p.out.String())
		}
	})
	if waitReady {
		select {
		case ok := <-ready:
			if !ok {
				<-p.done
				t.Fatalf("%s helper in %s ended: %v\n%s", role, ns.name, p.err, p.out.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s helper in %s: not ready within 20s\n%s", role, ns.name, p.out.String())
		}
	}
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// term sends SIGTERM and waits (bounded) for the process to end.
func (p *proc) term(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(unix.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		return errors.New("did not exit within 10s of SIGTERM")
	}
}
