package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// helperEnv makes the test binary start a lab and exit without removing it
// (a crashed `sealflow lab up`); see TestMain.
const helperEnv = "SEALFLOW_LAB_TEST_UP"

// helperNodeStackEnv makes that lab a NodeStack one.
const helperNodeStackEnv = "SEALFLOW_LAB_TEST_UP_NODESTACK"

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		l, err := Up(ctx, Config{Name: name, Masters: 1, Nodes: 1, NodeStack: os.Getenv(helperNodeStackEnv) != ""})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(l.Hosts)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustExec(t *testing.T, l *Lab, host string, argv ...string) string {
	t.Helper()
	out, err := l.Exec(testCtx(t), host, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func mustHost(t *testing.T, l *Lab, name string) Host {
	t.Helper()
	h, ok := l.Host(name)
	if !ok {
		t.Fatalf("lab %s has no host %s", l.Name, name)
	}
	return h
}

// sshBinary runs the real OpenSSH client against a lab host, with only the
// lab's key and known_hosts.
func sshBinary(t *testing.T, l *Lab, user string, h Host, stdin string, remote ...string) (string, error) {
	t.Helper()
	cmd := sshCommand(t, l, user, h, remote...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// sshCommand is the real OpenSSH client's command that runs remote on h
// with only the lab's key and known_hosts.
func sshCommand(t *testing.T, l *Lab, user string, h Host, remote ...string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("the test needs the OpenSSH client: apt-get install openssh-client (%v)", err)
	}
	args := []string{"-F", "/dev/null", "-i", l.Key, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + l.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
		user + "@" + h.Address}
	return exec.CommandContext(testCtx(t), path, append(args, remote...)...)
}

// sshPassword logs in to h with a password (x/crypto/ssh, host key checked
// against the lab's known_hosts) and runs cmd.
func sshPassword(t *testing.T, l *Lab, user, password string, h Host, cmd string) (string, error) {
	t.Helper()
	hk, err := knownhosts.New(l.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(h.Address, "22"), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.Password(password)}, HostKeyCallback: hk, Timeout: 20 * time.Second,
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

func TestLab(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Config{Name: "lab", Masters: 1, Nodes: 1, User: "alice"})
	m1, n1 := mustHost(t, l, "m1"), mustHost(t, l, "n1")

	t.Run("hostnames", func(t *testing.T) {
		for _, h := range []Host{m1, n1} {
			if got := mustExec(t, l, h.Name, "hostname"); got != h.Name {
				t.Errorf("hostname on %s = %q", h.Name, got)
			}
			hosts := mustExec(t, l, h.Name, "cat", "/etc/hosts")
			if !slices.Contains(strings.Split(hosts, "\n"), h.Address+"\t"+h.Name) {
				t.Errorf("/etc/hosts of %s lacks %q:\n%s", h.Name, h.Address+"\t"+h.Name, hosts)
			}
			if got := mustExec(t, l, h.Name, "getent", "hosts", h.Name); !strings.HasPrefix(got, h.Address+" ") {
				t.Errorf("getent hosts %s on %s = %q", h.Name, h.Name, got)
			}
			if got := mustExec(t, l, h.Name, "cat", "/etc/resolv.conf"); got != "nameserver 127.0.0.1" {
				t.Errorf("/etc/resolv.conf of %s = %q", h.Name, got)
			}
		}
	})

	t.Run("private files", func(t *testing.T) {
		marker := "/root/sealflow-lab-test-" + l.Name
		mustExec(t, l, "m1", "sh", "-c", "echo hi > "+marker+" && echo tmp > /tmp/x && mkdir -p /etc/kubernetes && echo k > /etc/kubernetes/f")
		if _, err := l.Exec(testCtx(t), "n1", "test", "-e", marker); err == nil {
			t.Errorf("%s written on m1 is visible on n1", marker)
		}
		if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s written on m1 is visible on the machine (stat: %v)", marker, err)
		}
		var inUpper bool
		for _, d := range l.UpperDirs("m1") {
			if _, err := os.Stat(filepath.Join(d, filepath.Base(marker))); err == nil && strings.HasSuffix(d, "/root") {
				inUpper = true
			}
		}
		if !inUpper {
			t.Errorf("%s is not in m1's upper dirs %v", marker, l.UpperDirs("m1"))
		}
		if _, err := l.Exec(testCtx(t), "n1", "test", "-e", "/etc/kubernetes/f"); err == nil {
			t.Error("/etc/kubernetes/f of m1 is visible on n1")
		}
		if got := mustExec(t, l, "m1", "cat", "/tmp/x"); got != "tmp" {
			t.Errorf("/tmp/x on m1 = %q", got)
		}
		if _, err := l.Exec(testCtx(t), "n1", "test", "-e", "/tmp/x"); err == nil {
			t.Error("/tmp/x of m1 is visible on n1")
		}
	})

	t.Run("processes", func(t *testing.T) {
		mustExec(t, l, "m1", "sh", "-c", "setsid sleep 987654 </dev/null >/dev/null 2>&1 &")
		if ps := mustExec(t, l, "m1", "ps", "-eo", "args"); !strings.Contains(ps, "sleep 987654") {
			t.Errorf("ps on m1 does not show the sleep started there:\n%s", ps)
		}
		ps := mustExec(t, l, "n1", "ps", "-eo", "pid,args")
		if strings.Contains(ps, "sleep 987654") {
			t.Errorf("ps on n1 shows a process of m1:\n%s", ps)
		}
		if !strings.Contains(ps, "1 bash "+filepath.Join(l.Dir, "hosts", "n1", "init.sh")) {
			t.Errorf("PID 1 of n1 is not its init:\n%s", ps)
		}
	})

	t.Run("network", func(t *testing.T) {
		if _, err := l.Exec(testCtx(t), "n1", "bash", "-c", "echo > /dev/tcp/"+m1.Address+"/22"); err != nil {
			t.Errorf("n1 cannot reach m1's sshd: %v", err)
		}
		if _, err := l.Exec(testCtx(t), "m1", "bash", "-c", "echo > /dev/tcp/"+n1.Address+"/22"); err != nil {
			t.Errorf("m1 cannot reach n1's sshd: %v", err)
		}
	})

	t.Run("ssh root", func(t *testing.T) {
		for _, h := range []Host{m1, n1} {
			got, err := sshBinary(t, l, "root", h, "", "hostname")
			if err != nil || got != h.Name {
				t.Errorf("ssh root@%s hostname = %q, %v", h.Address, got, err)
			}
		}
		if _, err := sshPassword(t, l, "root", l.Password, m1, "true"); err == nil {
			t.Error("root logged in with a password although Config.Password is false")
		}
	})

	t.Run("user and sudo", func(t *testing.T) {
		if l.Password == "" || l.User != "alice" {
			t.Fatalf("lab with a user has Password %q, User %q", l.Password, l.User)
		}
		fi, err := os.Stat(filepath.Join(l.Dir, "password"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("password file: %v, mode %v; want 0600", err, fi.Mode().Perm())
		}
		got, err := sshBinary(t, l, "alice", n1, "", "id", "-un")
		if err != nil || got != "alice" {
			t.Fatalf("ssh alice@n1 id -un = %q, %v", got, err)
		}
		got, err = sshBinary(t, l, "alice", n1, l.Password+"\n", "sudo -S -p '' id -u")
		if err != nil || got != "0" {
			t.Errorf("sudo -S with the password = %q, %v", got, err)
		}
		if got, err := sshBinary(t, l, "alice", n1, "", "sudo", "-n", "true"); err == nil {
			t.Errorf("sudo without a password worked (%q); it should ask for one", got)
		}
		if got, err := sshBinary(t, l, "alice", n1, "wrong-password\n", "sudo -S -p '' true"); err == nil {
			t.Errorf("sudo with a wrong password worked (%q)", got)
		}
		if _, err := sshPassword(t, l, "alice", l.Password, n1, "true"); err == nil {
			t.Error("alice logged in with a password although Config.Password is false")
		}
		if _, err := os.Stat("/home/alice"); err == nil {
			t.Error("/home/alice exists on the machine")
		}
		if out, _ := os.ReadFile("/etc/passwd"); bytes.Contains(out, []byte("\nalice:")) {
			t.Error("alice is in the machine's /etc/passwd")
		}
	})

	t.Run("exec", func(t *testing.T) {
		out, err := l.Exec(testCtx(t), "m1", "sh", "-c", "echo boom; exit 3")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(err.Error(), "boom") || out != "boom\n" {
			t.Errorf("Exec of a failing command = %q, %v; want exit 3 and the output in the error", out, err)
		}
		if _, err := l.Exec(testCtx(t), "nosuch", "true"); err == nil || !strings.Contains(err.Error(), "no host") {
			t.Errorf("Exec on an unknown host: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := l.Exec(ctx, "m1", "sleep", "600"); err == nil {
			t.Error("Exec outlived its context")
		}
		if ps := mustExec(t, l, "m1", "ps", "-eo", "args"); strings.Contains(ps, "sleep 600") {
			t.Errorf("a cancelled Exec left its process on m1:\n%s", ps)
		}
	})

	t.Run("stop and start sshd", func(t *testing.T) {
		ctx := testCtx(t)
		if err := l.StopSSHD(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := sshBinary(t, l, "root", n1, "", "true"); err == nil {
			t.Error("ssh to n1 works after StopSSHD")
		}
		if err := l.StartSSHD(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if got, err := sshBinary(t, l, "root", n1, "", "hostname"); err != nil || got != "n1" {
			t.Errorf("ssh after StartSSHD = %q, %v", got, err)
		}
		if err := l.StartSSHD(ctx, "n1"); err != nil {
			t.Errorf("StartSSHD while running: %v", err)
		}
	})

	t.Run("add host", func(t *testing.T) {
		h, err := l.AddHost(testCtx(t), "n2", "nodes")
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSuffix(n1.Address, "21") + "22"; h.Address != want {
			t.Errorf("n2 address = %s, want %s", h.Address, want)
		}
		if got, err := sshBinary(t, l, "root", h, "", "hostname"); err != nil || got != "n2" {
			t.Errorf("ssh root@n2 hostname = %q, %v", got, err)
		}
		if got, err := sshBinary(t, l, "alice", h, "", "id", "-un"); err != nil || got != "alice" {
			t.Errorf("ssh alice@n2 = %q, %v", got, err)
		}
		inv, _ := os.ReadFile(l.Inventory)
		if !strings.Contains(string(inv), "{name: n2, address: "+h.Address+"}") {
			t.Errorf("inventory lacks n2:\n%s", inv)
		}
		o, err := Open(l.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := o.Host("n2"); !ok || got != h {
			t.Errorf("state has n2 = %+v, %v; want %+v", got, ok, h)
		}
		if _, err := l.AddHost(testCtx(t), "n2", "nodes"); err == nil {
			t.Error("AddHost of an existing name worked")
		}
	})

	t.Run("open and list", func(t *testing.T) {
		o, err := Open(l.Name)
		if err != nil {
			t.Fatal(err)
		}
		if o.Dir != l.Dir || o.Subnet != l.Subnet || o.Password != l.Password || o.User != "alice" || o.Key != l.Key {
			t.Errorf("Open = %+v, want the lab of Up %+v", o, l)
		}
		if got := mustExec(t, o, "m1", "hostname"); got != "m1" {
			t.Errorf("Exec through Open: hostname = %q", got)
		}
		labs, err := List()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(labs, func(x *Lab) bool { return x.Name == l.Name }) {
			t.Errorf("List does not show lab %s", l.Name)
		}
		st, _ := os.ReadFile(statePath(l.Name))
		if bytes.Contains(st, []byte(l.Password)) {
			t.Error("the state file holds the password")
		}
	})

	t.Run("down", func(t *testing.T) {
		ctx := testCtx(t)
		before := snapshot(l)
		if err := Down(ctx, l.Name); err != nil {
			t.Fatal(err)
		}
		checkGone(t, l.Name, l.Dir, before)
		if err := Down(ctx, l.Name); err != nil {
			t.Errorf("second Down: %v", err)
		}
	})
}

// labTraces is what a lab leaves on the machine while it runs.
type labTraces struct {
	pids  []int
	links []string
	netns []string
}

func snapshot(l *Lab) labTraces {
	var tr labTraces
	for _, h := range l.Hosts {
		tr.pids = append(tr.pids, h.PID)
		tr.netns = append(tr.netns, netnsName(l.Name, h.Name))
	}
	if l.ControlNetns != "" {
		tr.netns = append(tr.netns, l.ControlNetns)
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Name == bridgeName(l.Name) || isVeth(l.Name, i.Name) {
			tr.links = append(tr.links, i.Name)
		}
	}
	return tr
}

// checkGone checks that nothing of lab name is left on the machine.
func checkGone(t *testing.T, name, dir string, before labTraces) {
	t.Helper()
	if len(before.pids) == 0 || len(before.links) == 0 || len(before.netns) == 0 {
		t.Fatalf("the running lab showed no processes, links or netns: %+v", before)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, ns := range before.netns {
		if strings.Contains(string(out), ns) {
			t.Errorf("netns %s left:\n%s", ns, out)
		}
	}
	for _, link := range before.links {
		if _, err := net.InterfaceByName(link); err == nil {
			t.Errorf("link %s left", link)
		}
	}
	for _, pid := range before.pids {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && bytes.Contains(b, []byte(name)) {
			t.Errorf("init process %d left: %q", pid, b)
		}
	}
	for _, pid := range pids() {
		if args := cmdline(pid); slices.Contains(args, initMark) && slices.Contains(args, name) {
			t.Errorf("process %d of the lab left: %q", pid, args)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(before.netns, dir) {
		if bytes.Contains(mi, []byte(s)) {
			t.Errorf("a mount of %s is left:\n%s", s, mi)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lab dir %s left (stat: %v)", dir, err)
	}
	if _, err := Open(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after Down: %v, want not found", err)
	}
}

// TestDownAfterCrash starts a lab in a process that exits without removing
// it; the hosts live on, and Down still removes everything after the
// hosts' inits were killed and the state file lost.
func TestDownAfterCrash(t *testing.T) {
	t.Parallel()
	if err := CheckMachine(Config{}); err != nil {
		t.Skipf("no lab here: %v", err)
	}
	name := "crash-" + randomSuffix()
	t.Cleanup(func() { Down(context.Background(), name) })
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("up in a child process: %v\n%s", err, stderr.String())
	}
	var hosts []Host
	if err := json.Unmarshal(out, &hosts); err != nil || len(hosts) != 2 {
		t.Fatalf("child printed %q: %v", out, err)
	}

	l, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if got := mustExec(t, l, h.Name, "hostname"); got != h.Name {
			t.Errorf("host %s after its up process exited: hostname %q", h.Name, got)
		}
	}
	before := snapshot(l)
	for _, h := range l.Hosts {
		if err := syscall.Kill(h.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill init of %s: %v", h.Name, err)
		}
	}
	if err := waitGone(testCtx(t), before.pids); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(testCtx(t), "m1", "true"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Exec on a host whose init was killed: %v", err)
	}
	if err := os.Remove(statePath(name)); err != nil {
		t.Fatal(err)
	}
	if err := Down(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	checkGone(t, name, defaultDir(name), before)
}

// TestTwoLabs runs two labs at once, one with password login.
func TestTwoLabs(t *testing.T) {
	t.Parallel()
	a := ForTest(t, Config{Name: "a", Nodes: 1})
	b := ForTest(t, Config{Name: "b", Masters: 1, Password: true})
	if a.Subnet == b.Subnet || a.Gateway == b.Gateway {
		t.Fatalf("two labs share subnet %s / gateway %s", a.Subnet, a.Gateway)
	}
	for _, l := range []*Lab{a, b} {
		h := l.Hosts[0]
		if got, err := sshBinary(t, l, "root", h, "", "hostname"); err != nil || got != h.Name {
			t.Errorf("lab %s: ssh root@%s hostname = %q, %v", l.Name, h.Address, got, err)
		}
	}
	ctx := testCtx(t)
	if _, err := Up(ctx, Config{Name: a.Name, Masters: 1}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Up of an existing lab's name: %v", err)
	}
	other := "c-" + randomSuffix()
	t.Cleanup(func() { Down(context.Background(), other) })
	if _, err := Up(ctx, Config{Name: other, Masters: 1, Subnet: a.Subnet}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("Up with the subnet of another lab: %v", err)
	}
	if got := mustExec(t, a, a.Hosts[0].Name, "hostname"); got != a.Hosts[0].Name {
		t.Errorf("lab %s after a clashing Up: hostname %q", a.Name, got)
	}
	bh := b.Hosts[0]
	if b.Password == "" {
		t.Fatal("lab with Password has no password")
	}
	if got, err := sshPassword(t, b, "root", b.Password, bh, "hostname"); err != nil || got != bh.Name {
		t.Errorf("password login to root@%s = %q, %v", bh.Address, got, err)
	}
	if _, err := sshPassword(t, b, "root", "not-"+b.Password, bh, "true"); err == nil {
		t.Error("root logged in with a wrong password")
	}
	// The other lab's key is not authorized here.
	if _, err := sshBinary(t, &Lab{Key: a.Key, KnownHosts: b.KnownHosts}, "root", bh, "", "true"); err == nil {
		t.Errorf("lab %s's key logs in to lab %s", a.Name, b.Name)
	}
}

func TestUpRejectsBadConfig(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "Bad", Masters: 1}, "use only"},
		{Config{Name: "x"}, "at least one host"},
		{Config{Name: "x", Masters: 1, Dir: "/root/x"}, "inside /root"},
		{Config{Name: "x", Masters: 1, User: "root"}, "non-root"},
		{Config{Name: "x", Masters: 200, Nodes: 100}, "do not fit"},
		{Config{Name: "x", Masters: 1, Rate: "fast"}, `rate "fast": want a number and a unit`},
		{Config{Name: "x", Masters: 1, Rate: "100mb"}, `unknown unit "mb"`},
		{Config{Name: "x", Masters: 1, Rate: "0mbit"}, "want from 8kbit"},
	} {
		_, err := Up(ctx, tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Up(%+v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
		if !errors.As(err, new(InputError)) {
			t.Errorf("Up(%+v) = %v (%T), want an InputError (exit 2)", tt.cfg, err, err)
		}
	}
}

// TestUpCleansUpAfterFailure: an Up that fails half way leaves nothing.
func TestUpCleansUpAfterFailure(t *testing.T) {
	t.Parallel()
	if err := CheckMachine(Config{}); err != nil {
		t.Skipf("no lab here: %v", err)
	}
	name := "fail-" + randomSuffix()
	t.Cleanup(func() { Down(context.Background(), name) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the first tool Up runs fails
	if _, err := Up(ctx, Config{Name: name, Masters: 2}); err == nil {
		t.Fatal("Up with a cancelled context worked")
	}
	if _, err := os.Stat(statePath(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
	if _, err := os.Stat(defaultDir(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lab dir left: %v", err)
	}
	if ents, _ := os.ReadDir("/run/netns"); slices.ContainsFunc(ents, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), netnsPrefix(name)) }) {
		t.Errorf("netns left: %v", ents)
	}
}
