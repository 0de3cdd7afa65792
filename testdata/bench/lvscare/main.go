// Command lvscare-bench measures lvscare with real kernel rules in network
// namespaces: the time from killing a master's server to the moment every
// request through the VIP succeeds again, and the idle daemon's RSS and
// CPU. Run by testdata/bench/lvscare.sh (as root).
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/sealflow/sealflow/lvscare"
	"github.com/sealflow/sealflow/lvscare/podspec"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "server":
			os.Exit(server(os.Args[2]))
		case "care":
			os.Exit(care(os.Args[2:]))
		}
	}
	daemon := flag.String("daemon", "", "command that runs `lvscare care` flags (e.g. \"bin/sealflow lvscare\"); empty: this program's own care mode")
	trials := flag.Int("trials", 5, "failover trials with the default settings")
	origTrials := flag.Int("orig-trials", 3, "failover trials with the original LVScare's defaults (5s interval, fall 2)")
	idle := flag.Duration("idle", 30*time.Second, "how long to sample the idle daemon")
	flag.Parse()
	if err := run(*daemon, *trials, *origTrials, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "lvscare-bench:", err)
		os.Exit(1)
	}
}

// server serves HTTPS on :6443 (self-signed): /healthz "ok", else name.
func server(name string) int {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := tls.Listen("tcp", ":6443", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) })
	_ = http.Serve(l, mux)
	return 1
}

// care is the daemon through the library, for trees where the CLI does not
// have the lvscare command yet: --vs, --rs..., --interval, --fall.
func care(args []string) int {
	fs := flag.NewFlagSet("care", flag.ExitOnError)
	vs := fs.String("vs", "", "")
	interval := fs.String("interval", "1s", "")
	fall := fs.Int("fall", podspec.DefaultFall, "")
	var rs []string
	fs.Func("rs", "", func(s string) error { rs = append(rs, s); return nil })
	_ = fs.Parse(args)
	o := podspec.DefaultOptions()
	var err error
	if o.VS, err = podspec.ParseAddrPort("--vs", *vs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, r := range rs {
		ap, err := podspec.ParseAddrPort("--rs", r)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		o.RS = append(o.RS, ap)
	}
	if o.Interval, err = time.ParseDuration(*interval); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o.Fall = *fall
	// The backend pin goes to a directory of its own, not the machine's
	// /run/sealflow.
	if o.LockDir, err = os.MkdirTemp("", "lvscare-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(o.LockDir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := lvscare.Care(ctx, o, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type bench struct {
	prefix  string
	nodeNS  netns.NsHandle
	masters []string
	servers []*exec.Cmd
	self    string
	client  *http.Client
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

const vip = "10.103.97.2:6443"

func run(daemon string, trials, origTrials int, idle time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b := &bench{prefix: fmt.Sprintf("lvsb%d", os.Getpid()), self: self}
	defer b.teardown()
	if err := b.setup(); err != nil {
		return err
	}
	b.client = &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return b.dial(ctx, addr) },
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}}
	for i := range b.masters {
		if err := b.startServer(i); err != nil {
			return err
		}
	}

	for _, cfg := range []struct {
		label    string
		interval time.Duration
		fall     int
		trials   int
	}{
		{"default settings (interval 1s, fall 2)", time.Second, 2, trials},
		{"original LVScare's defaults (interval 5s, fall 2)", 5 * time.Second, 2, origTrials},
	} {
		if cfg.trials == 0 {
			continue
		}
		d, err := b.startDaemon(daemon, cfg.interval, cfg.fall)
		if err != nil {
			return err
		}
		if err := b.waitAll(30 * time.Second); err != nil {
			return err
		}
		if cfg.interval == time.Second && idle > 0 {
			rss, hwm, cpu, err := sample(d.Process.Pid, idle)
			if err != nil {
				return err
			}
			fmt.Printf("lvscare idle daemon, 3 real servers, https probes every %s, over %s: RSS %.1f MiB (peak %.1f MiB), CPU %.2f %% of one core\n",
				cfg.interval, idle, rss, hwm, cpu)
		}
		var got []time.Duration
		for i := range cfg.trials {
			victim := i % len(b.masters)
			rec, fails, err := b.failover(victim, cfg.interval*time.Duration(cfg.fall)+8*time.Second)
			if err != nil {
				return err
			}
			got = append(got, rec)
			fmt.Printf("  trial %d (%s): kill m%d → 100 %% success again after %.2fs (%d requests failed)\n",
				i+1, cfg.label, victim+1, rec.Seconds(), fails)
			if err := b.startServer(victim); err != nil {
				return err
			}
			if err := b.waitAll(30 * time.Second); err != nil {
				return err
			}
		}
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		fmt.Printf("lvscare failover with %s: median %.2fs, min %.2fs, max %.2fs over %d trials\n",
			cfg.label, got[len(got)/2].Seconds(), got[0].Seconds(), got[len(got)-1].Seconds(), len(got))
		_ = d.Process.Signal(syscall.SIGTERM)
		_ = d.Wait()
	}
	return nil
}

func (b *bench) setup() error {
	sw, node := b.prefix+"-sw", b.prefix+"-node"
	steps := [][]string{
		{"ip", "netns", "add", sw}, {"ip", "netns", "add", node},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
		{"ip", "-n", node, "link", "set", "lo", "up"},
		{"ip", "-n", sw, "link", "add", "pnode", "type", "veth", "peer", "name", "eth0", "netns", node},
		{"ip", "-n", sw, "link", "set", "pnode", "master", "br0", "up"},
		{"ip", "-n", node, "addr", "add", "192.168.78.2/24", "dev", "eth0"},
		{"ip", "-n", node, "link", "set", "eth0", "up"},
	}
	for i := range 3 {
		m := fmt.Sprintf("%s-m%d", b.prefix, i+1)
		b.masters = append(b.masters, m)
		p := fmt.Sprintf("pm%d", i+1)
		steps = append(steps,
			[]string{"ip", "netns", "add", m},
			[]string{"ip", "-n", m, "link", "set", "lo", "up"},
			[]string{"ip", "-n", sw, "link", "add", p, "type", "veth", "peer", "name", "eth0", "netns", m},
			[]string{"ip", "-n", sw, "link", "set", p, "master", "br0", "up"},
			[]string{"ip", "-n", m, "addr", "add", fmt.Sprintf("192.168.78.%d/24", 11+i), "dev", "eth0"},
			[]string{"ip", "-n", m, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return err
		}
	}
	b.servers = make([]*exec.Cmd, 3)
	h, err := netns.GetFromName(node)
	if err != nil {
		return err
	}
	b.nodeNS = h
	return nil
}

func (b *bench) teardown() {
	for _, s := range b.servers {
		if s != nil && s.ProcessState == nil {
			_ = s.Process.Kill()
			_ = s.Wait()
		}
	}
	for _, ns := range append([]string{b.prefix + "-node", b.prefix + "-sw"}, b.masters...) {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}

func (b *bench) startServer(i int) error {
	cmd := exec.Command("ip", "netns", "exec", b.masters[i], b.self, "server", fmt.Sprintf("m%d", i+1))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return fmt.Errorf("server m%d did not start: %v", i+1, err)
	}
	b.servers[i] = cmd
	return nil
}

func (b *bench) startDaemon(daemon string, interval time.Duration, fall int) (*exec.Cmd, error) {
	argv := []string{b.self}
	if daemon != "" {
		argv = strings.Fields(daemon)
	}
	args := append([]string{"netns", "exec", b.prefix + "-node"}, argv...)
	args = append(args, "care", "--vs", vip, "--interval", interval.String(), "--fall", strconv.Itoa(fall))
	for i := range b.masters {
		args = append(args, "--rs", fmt.Sprintf("192.168.78.%d:6443", 11+i))
	}
	cmd := exec.Command("ip", args...)
	logf, err := os.CreateTemp("", "lvscare-bench-daemon-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(os.Stderr, "lvscare-bench: daemon log %s\n", logf.Name())
	cmd.Stderr, cmd.Stdout = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// dial connects from the node namespace.
func (b *bench) dial(ctx context.Context, addr string) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(b.nodeNS); err != nil {
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

func (b *bench) get() (string, error) {
	resp, err := b.client.Get("https://" + vip + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func (b *bench) waitAll(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		seen := map[string]bool{}
		ok := true
		for range 30 {
			w, err := b.get()
			if err != nil {
				ok = false
				break
			}
			seen[w] = true
		}
		if ok && len(seen) == 3 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the VIP did not reach all three masters within %s", limit)
}

// failover kills master i and requests through the VIP every 10 ms; it
// returns when the last failed request ended after the kill, judged once
// 3 s pass without failures (or window ends).
func (b *bench) failover(i int, window time.Duration) (time.Duration, int, error) {
	t0 := time.Now()
	_ = b.servers[i].Process.Kill()
	_ = b.servers[i].Wait()
	var lastFail time.Time
	var lastErr error
	fails := 0
	for time.Since(t0) < window {
		if _, err := b.get(); err != nil {
			lastFail, lastErr = time.Now(), err
			fails++
		} else if !lastFail.IsZero() && time.Since(lastFail) > 3*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lastFail.IsZero() {
		return 0, 0, nil
	}
	if time.Since(lastFail) < 3*time.Second {
		return 0, fails, fmt.Errorf("requests still failing %s after killing m%d: %v", window, i+1, lastErr)
	}
	return lastFail.Sub(t0), fails, nil
}

// sample reads the process's RSS and CPU over d.
func sample(pid int, d time.Duration) (rssMiB, hwmMiB, cpuPct float64, err error) {
	ticks := func() (float64, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return u + s, nil
	}
	kib := func(field string) (float64, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, field+":") {
				v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
				return v, nil
			}
		}
		return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
	}
	time.Sleep(2 * time.Second) // let start-up settle
	t1, err := ticks()
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	var maxRSS float64
	for time.Since(start) < d {
		time.Sleep(time.Second)
		r, err := kib("VmRSS")
		if err != nil {
			return 0, 0, 0, err
		}
		maxRSS = max(maxRSS, r)
	}
	t2, err := ticks()
	if err != nil {
		return 0, 0, 0, err
	}
	hwm, err := kib("VmHWM")
	if err != nil {
		return 0, 0, 0, err
	}
	const clkTck = 100 // USER_HZ on Linux
	cpu := (t2 - t1) / clkTck / time.Since(start).Seconds() * 100
	return maxRSS / 1024, hwm / 1024, cpu, nil
}
