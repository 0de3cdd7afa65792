package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "100mbit", want: 100_000_000},
		{in: " 1GBit ", want: 1_000_000_000},
		{in: "12.5mbps", want: 100_000_000},
		{in: "500kbit", want: 500_000},
		{in: "8kbit", want: 8_000},
		{in: "", err: "want a number and a unit"},
		{in: "100", err: "want a number and a unit"},
		{in: "-5mbit", err: "want a number and a unit"},
		{in: "100mb", err: `unknown unit "mb"`},
		{in: "1kbit", err: "want from 8kbit to 100gbit"},
		{in: "1tbit", err: `unknown unit "tbit"`},
		{in: "200gbit", err: "want from 8kbit to 100gbit"},
	} {
		got, err := parseRate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseRate(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	// The bucket holds a tick of data at the rate, and never less than a
	// GSO super-packet.
	for rate, want := range map[uint64]uint64{8_000: tbfMinBurst, 100_000_000: tbfMinBurst, 1_000_000_000: 500_000} {
		if got := tbfBurst(rate); got != want {
			t.Errorf("tbfBurst(%d) = %d, want %d", rate, got, want)
		}
	}
}

// tbf is what `tc -j qdisc show` says of a root tbf qdisc.
type tbf struct {
	Kind    string `json:"kind"`
	Root    bool   `json:"root"`
	Options struct {
		Rate  uint64 `json:"rate"` // bytes/s
		Burst uint64 `json:"burst"`
		Lat   uint64 `json:"lat"` // µs
	} `json:"options"`
}

// qdiscs returns the qdiscs of dev in netns ("" for the machine's).
func qdiscs(t *testing.T, netns, dev string) []tbf {
	t.Helper()
	args := []string{"-j", "qdisc", "show", "dev", dev}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	out, err := exec.Command("tc", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	var qs []tbf
	if err := json.Unmarshal(out, &qs); err != nil {
		t.Fatalf("tc %s printed %s: %v", strings.Join(args, " "), out, err)
	}
	return qs
}

// checkShaped checks that both ends of a link are shaped at rate.
func checkShaped(t *testing.T, what string, rate uint64, ends ...[2]string) {
	t.Helper()
	var want tbf
	want.Kind, want.Root = "tbf", true
	want.Options.Rate, want.Options.Burst, want.Options.Lat = rate/8, tbfBurst(rate), 50_000
	for _, e := range ends {
		if diff := cmp.Diff([]tbf{want}, qdiscs(t, e[0], e[1])); diff != "" {
			t.Errorf("%s: qdiscs of %s in netns %q (-want +got):\n%s", what, e[1], e[0], diff)
		}
	}
}

// viaNetns runs cmd in the named network namespace.
func viaNetns(cmd *exec.Cmd, netns string) *exec.Cmd {
	ip, _ := exec.LookPath("ip")
	cmd.Args = append([]string{ip, "netns", "exec", netns}, cmd.Args...)
	cmd.Path = ip
	return cmd
}

// send has cmd (an ssh to a host) carry n bytes: to the host ("up") or
// from it. It returns how long that took.
func send(t *testing.T, cmd *exec.Cmd, n int, up bool) time.Duration {
	t.Helper()
	var out bytes.Buffer
	if up {
		cmd.Args = append(cmd.Args, "cat >/dev/null")
		cmd.Stdin = bytes.NewReader(make([]byte, n))
	} else {
		cmd.Args = append(cmd.Args, fmt.Sprintf("head -c %d /dev/zero", n))
	}
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %.500s", strings.Join(cmd.Args, " "), err, out.String())
	}
	took := time.Since(start)
	if !up && out.Len() != n {
		t.Fatalf("%s: got %d bytes, want %d", strings.Join(cmd.Args, " "), out.Len(), n)
	}
	return took
}

func mustEgress(t *testing.T, f func() (uint64, error)) uint64 {
	t.Helper()
	n, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hostToHost has host from send n bytes to host to over ssh (the lab's key
// and known_hosts are in the lab's dir, which the hosts see).
func hostToHost(t *testing.T, l *Lab, from, to Host, n int) {
	t.Helper()
	script := fmt.Sprintf("head -c %d /dev/zero | ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes root@%s 'cat >/dev/null'",
		n, quote(l.Key), quote(l.KnownHosts), to.Address)
	mustExec(t, l, from.Name, "bash", "-c", script)
}

func TestShapedLab(t *testing.T) {
	t.Parallel()
	const rate = 16_000_000 // 2 MB/s
	l := ForTest(t, Config{Name: "shape", Nodes: 2, Rate: "16mbit", ControlNS: true})
	n1, n2 := mustHost(t, l, "n1"), mustHost(t, l, "n2")

	t.Run("control namespace", func(t *testing.T) {
		if l.ControlNetns != controlNetnsName(l.Name) || l.Rate != "16mbit" {
			t.Fatalf("ControlNetns %q, Rate %q; want %q, 16mbit", l.ControlNetns, l.Rate, controlNetnsName(l.Name))
		}
		a, err := netip.ParseAddr(l.ControlAddress)
		p := netip.MustParsePrefix(l.Subnet)
		if err != nil || !p.Contains(a) || a.String() == l.Gateway || a == p.Addr() {
			t.Errorf("control address %q: want an address of %s other than the gateway %s", l.ControlAddress, l.Subnet, l.Gateway)
		}
		for _, h := range l.Hosts {
			if h.Address == l.ControlAddress {
				t.Errorf("host %s has the control address %s", h.Name, h.Address)
			}
		}
		o, err := Open(l.Name)
		if err != nil {
			t.Fatal(err)
		}
		if o.ControlNetns != l.ControlNetns || o.ControlAddress != l.ControlAddress || o.Rate != l.Rate {
			t.Errorf("Open = control %q %q rate %q; want %q %q %q", o.ControlNetns, o.ControlAddress, o.Rate, l.ControlNetns, l.ControlAddress, l.Rate)
		}
		for _, h := range []Host{n1, n2} {
			cmd := viaNetns(sshCommand(t, l, "root", h, "hostname; echo $SSH_CLIENT"), l.ControlNetns)
			out, err := cmd.CombinedOutput()
			lines := strings.Fields(string(out))
			if err != nil || len(lines) < 2 || lines[0] != h.Name || lines[1] != l.ControlAddress {
				t.Errorf("ssh from the control namespace to %s: %v: %q; want its name and the control address %s as the client", h.Name, err, out, l.ControlAddress)
			}
		}
	})

	t.Run("both ends shaped", func(t *testing.T) {
		for _, h := range l.Hosts {
			checkShaped(t, "host "+h.Name, rate, [2]string{"", h.Link}, [2]string{netnsName(l.Name, h.Name), "eth0"})
		}
		checkShaped(t, "control", rate, [2]string{"", controlVethName(l.Name)}, [2]string{l.ControlNetns, "eth0"})
	})

	t.Run("the rate limits", func(t *testing.T) {
		// Only a lower bound: a busy machine makes a transfer slower, never
		// faster than the link. Unshaped, 4 MB take a few ms.
		const n = 4 << 20
		least := time.Duration(float64(n*8) / rate * float64(time.Second) / 2)
		if took := send(t, viaNetns(sshCommand(t, l, "root", n1), l.ControlNetns), n, true); took < least {
			t.Errorf("%d bytes from the control namespace to n1 took %s; at 16mbit they take at least %s", n, took, 2*least)
		}
		if took := send(t, viaNetns(sshCommand(t, l, "root", n1), l.ControlNetns), n, false); took < least {
			t.Errorf("%d bytes from n1 to the control namespace took %s; at 16mbit they take at least %s", n, took, 2*least)
		}
	})

	t.Run("egress", func(t *testing.T) {
		const n = 1 << 20
		c0, h0 := mustEgress(t, l.ControlEgress), mustEgress(t, func() (uint64, error) { return l.HostEgress("n1") })
		send(t, viaNetns(sshCommand(t, l, "root", n2), l.ControlNetns), n, true)
		c1 := mustEgress(t, l.ControlEgress)
		if c1-c0 < n || c1-c0 > 2*n {
			t.Errorf("ControlEgress grew by %d after %d bytes to n2; want from %d to %d", c1-c0, n, n, 2*n)
		}
		hostToHost(t, l, n1, n2, n)
		c2, h2 := mustEgress(t, l.ControlEgress), mustEgress(t, func() (uint64, error) { return l.HostEgress("n1") })
		if c2-c1 > n/10 {
			t.Errorf("ControlEgress grew by %d while n1 sent %d bytes to n2", c2-c1, n)
		}
		if h2-h0 < n {
			t.Errorf("HostEgress(n1) grew by %d after n1 sent %d bytes to n2", h2-h0, n)
		}
		if _, err := l.HostEgress("nosuch"); err == nil || !strings.Contains(err.Error(), "no host") {
			t.Errorf("HostEgress of an unknown host: %v", err)
		}
	})

	t.Run("add host", func(t *testing.T) {
		h, err := l.AddHost(testCtx(t), "n3", "nodes")
		if err != nil {
			t.Fatal(err)
		}
		checkShaped(t, "added host n3", rate, [2]string{"", h.Link}, [2]string{netnsName(l.Name, h.Name), "eth0"})
		if got, err := viaNetns(sshCommand(t, l, "root", h, "hostname"), l.ControlNetns).CombinedOutput(); err != nil || strings.TrimSpace(string(got)) != "n3" {
			t.Errorf("ssh from the control namespace to n3: %q, %v", got, err)
		}
		if _, err := l.AddHost(testCtx(t), controlHost, "nodes"); err == nil || !strings.Contains(err.Error(), "control namespace") {
			t.Errorf("AddHost(%q) = %v; want an error: the name is the control namespace's", controlHost, err)
		}
	})

	t.Run("down", func(t *testing.T) {
		before := snapshot(l)
		if !strings.Contains(strings.Join(before.links, " "), controlVethName(l.Name)) {
			t.Fatalf("the control link %s is not among the lab's links %v", controlVethName(l.Name), before.links)
		}
		if err := Down(testCtx(t), l.Name); err != nil {
			t.Fatal(err)
		}
		checkGone(t, l.Name, l.Dir, before)
		out, err := exec.Command("tc", "qdisc", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("tc qdisc show: %v: %s", err, out)
		}
		for _, link := range before.links {
			if strings.Contains(string(out), " "+link+" ") {
				t.Errorf("a qdisc of %s is left:\n%s", link, out)
			}
		}
	})
}

// TestBridgeEgress: without a control namespace, ControlEgress counts what
// the machine sends through the bridge, not what the bridge forwards from
// one host to another.
func TestBridgeEgress(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Config{Name: "egress", Nodes: 2})
	n1, n2 := mustHost(t, l, "n1"), mustHost(t, l, "n2")
	const n = 4 << 20
	c0 := mustEgress(t, l.ControlEgress)
	send(t, sshCommand(t, l, "root", n1), n, true)
	c1 := mustEgress(t, l.ControlEgress)
	if c1-c0 < n || c1-c0 > 2*n {
		t.Errorf("ControlEgress grew by %d after the machine sent %d bytes to n1; want from %d to %d", c1-c0, n, n, 2*n)
	}
	hostToHost(t, l, n1, n2, n)
	if c2 := mustEgress(t, l.ControlEgress); c2-c1 > n/10 {
		t.Errorf("ControlEgress grew by %d while n1 sent %d bytes to n2 through the bridge", c2-c1, n)
	}
	if l.ControlNetns != "" || l.ControlAddress != "" {
		t.Errorf("a lab without ControlNS has control namespace %q, %q", l.ControlNetns, l.ControlAddress)
	}
	for _, h := range l.Hosts {
		if qs := qdiscs(t, "", h.Link); len(qs) > 0 && qs[0].Kind == "tbf" {
			t.Errorf("host %s of an unshaped lab has a tbf on %s", h.Name, h.Link)
		}
	}
}
