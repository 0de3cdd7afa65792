package ipvstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/vishvananda/netlink"

	"github.com/sealflow/sealflow/internal/testutil"
	"github.com/sealflow/sealflow/lvscare"
	"github.com/sealflow/sealflow/lvscare/podspec"
)

// server is one real server on a loopback port; it can stop and start.
type server struct {
	addr string
	name string
	srv  *http.Server
}

func (s *server) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("listen %s: %v", s.addr, err)
	}
	name := s.name
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })}
	go s.srv.Serve(l)
}

func (s *server) stop() { s.srv.Close() }

var client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func requests(url string, n int) ([]string, error) {
	var who []string
	for i := range n {
		resp, err := client.Get(url)
		if err != nil {
			return who, fmt.Errorf("request %d of %d: %w", i+1, n, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return who, err
		}
		who = append(who, string(b))
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

func eventually(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	testutil.Eventually(t, what, limit, 50*time.Millisecond, f)
}

func reach(url string, n int, want []string) func() error {
	return func() error {
		who, err := requests(url, n)
		if err != nil {
			return err
		}
		if got := distinct(who); !cmp.Equal(want, got) {
			return fmt.Errorf("answered by %v, want %v", got, want)
		}
		return nil
	}
}

// state renders the IPVS services and every IPv4 address and link.
func state(t *testing.T, b *lvscare.IPVS, vs netip.AddrPort) string {
	t.Helper()
	var lines []string
	svc, err := b.Get(context.Background(), vs)
	switch {
	case errors.Is(err, lvscare.ErrNotFound):
		lines = append(lines, "no service")
	case err != nil:
		t.Fatal(err)
	default:
		lines = append(lines, fmt.Sprintf("service %v", svc))
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		lines = append(lines, "link "+l.Attrs().Name)
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			lines = append(lines, "  addr "+a.IPNet.String())
		}
	}
	return strings.Join(lines, "\n")
}

func TestIPVSScenario(t *testing.T) {
	if os.Getenv("LVSCARE_IPVS_VM") != "1" {
		t.Skip("runs inside the qemu VM of lvscare/ipvstest/run.sh (make test-ipvs), where the kernel has IPVS")
	}
	if !lvscare.IPVSAvailable() {
		t.Fatal("the kernel has no IPVS: were the modules loaded?")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	auto, err := lvscare.OpenBackend(podspec.ModeAuto, log)
	if err != nil {
		t.Fatal(err)
	}
	if auto.Name() != "ipvs" {
		t.Errorf("--mode auto picked %s on a kernel with IPVS", auto.Name())
	}
	auto.(io.Closer).Close()

	b, err := lvscare.NewIPVS()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := podspec.DefaultOptions()
	o.VS, o.Mode = netip.MustParseAddrPort("10.103.97.12:6443"), podspec.ModeIPVS
	o.Health.Scheme, o.Health.Path = "http", "/"
	before := state(t, b, o.VS)

	var servers []*server
	for i := range 3 {
		s := &server{addr: fmt.Sprintf("127.0.0.1:%d", 8081+i), name: fmt.Sprintf("s%d", i+1)}
		s.start(t)
		servers = append(servers, s)
		o.RS = append(o.RS, netip.MustParseAddrPort(s.addr))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lvscare.CareWith(ctx, o, b, lvscare.SystemClock{}, log) }()
	stopDaemon := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("daemon: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("daemon did not stop within 10s")
		}
	}

	url := "http://" + o.VS.String() + "/"
	all := []string{"s1", "s2", "s3"}
	eventually(t, "VIP reaches all three", 20*time.Second, reach(url, 30, all))

	servers[0].stop()
	limit := o.Interval*time.Duration(o.Fall) + 2*time.Second
	eventually(t, "s1 out, 50 requests in a row succeed", limit, reach(url, 50, []string{"s2", "s3"}))

	servers[1].stop()
	servers[2].stop()
	eventually(t, "no real servers left", 20*time.Second, func() error {
		svc, err := b.Get(context.Background(), o.VS)
		if err != nil {
			return err
		}
		if len(svc.RS) != 0 {
			return fmt.Errorf("real servers %v", svc.RS)
		}
		return nil
	})
	for range 5 {
		c, err := net.DialTimeout("tcp", o.VS.String(), time.Second)
		if err == nil {
			c.Close()
			t.Fatal("connected with every server down")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("with every server down: %v, want connection refused within 1s", err)
		}
	}

	for _, s := range servers {
		s.start(t)
	}
	eventually(t, "all three back", 20*time.Second, reach(url, 30, all))

	// Stopping the daemon leaves the rules: traffic keeps flowing.
	stopDaemon()
	eventually(t, "traffic with the daemon stopped", 5*time.Second, reach(url, 30, all))
	st, err := lvscare.Status(context.Background(), o.VS, podspec.ModeAuto, t.TempDir())
	if err != nil || st.Backend != "ipvs" || len(st.RS) != 3 || !st.Intact {
		t.Errorf("status: %+v %v", st, err)
	}

	// Someone flushes IPVS and removes the VIP: a new daemon puts both back.
	if err := b.Delete(context.Background(), o.VS); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	done = make(chan error, 1)
	go func() { done <- lvscare.CareWith(ctx, o, b, lvscare.SystemClock{}, log) }()
	eventually(t, "VIP back after an external flush", 20*time.Second, reach(url, 30, all))
	stopDaemon()

	if err := lvscare.Clean(context.Background(), o.VS, podspec.ModeIPVS, t.TempDir(), log); err != nil {
		t.Fatalf("clean: %v", err)
	}
	if diff := cmp.Diff(before, state(t, b, o.VS)); diff != "" {
		t.Errorf("clean must leave IPVS, links and addresses as they were (-before +after):\n%s", diff)
	}
	for _, s := range servers {
		s.stop()
	}
}
