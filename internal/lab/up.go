package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

const (
	// hostStartTimeout bounds the start of one host (init, mounts, sshd).
	hostStartTimeout = 60 * time.Second
	// toolTimeout bounds one run of a tool such as ip.
	toolTimeout = 30 * time.Second
	// startParallel is how many hosts start at once.
	startParallel = 8
)

// toolPath is the PATH the lab runs its tools and hosts with.
const toolPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func toolEnv() []string {
	return []string{"PATH=" + toolPath, "HOME=/root", "LANG=C.UTF-8"}
}

// lookTool finds a tool on toolPath.
func lookTool(name string) (string, error) {
	for _, d := range filepath.SplitList(toolPath) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, toolPath)
}

// run runs a tool and returns an error with its output when it fails.
func run(ctx context.Context, name string, args ...string) error {
	path, err := lookTool(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = toolEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// CheckMachine says what the machine lacks to run a lab of cfg, as a
// NeedError, or nil.
func CheckMachine(cfg Config) error {
	if os.Geteuid() != 0 {
		return NeedError{What: "root", Fix: "run as root (e.g. sudo sealflow lab up ...): a lab makes network and mount namespaces"}
	}
	if cfg.Systemd || cfg.KubeNode {
		if _, err := os.Stat(systemdPath); err != nil {
			return NeedError{What: "systemd (" + systemdPath + ") for --systemd", Fix: "apt-get install systemd"}
		}
	}
	if cfg.NodeStack || cfg.Systemd || cfg.KubeNode {
		hs, err := hierarchies()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(hs, func(h hierarchy) bool { return !h.V2 }) {
			// With cgroup v2 alone, a host's subtree would hold the host's
			// own processes and the kubelet's children with controllers,
			// which v2 forbids; not done yet.
			return NeedError{What: "cgroup v1 hierarchies under /sys/fs/cgroup (for --node-stack; cgroup v2 alone is not supported yet)",
				Fix: "boot with systemd.unified_cgroup_hierarchy=0, or mount the v1 hierarchies"}
		}
	}
	if _, err := os.Stat(sshdPath); err != nil {
		return NeedError{What: "an OpenSSH server (" + sshdPath + ")", Fix: "apt-get install openssh-server"}
	}
	tools := []struct{ name, pkg string }{
		{"ip", "iproute2"}, {"unshare", "util-linux"}, {"nsenter", "util-linux"}, {"setsid", "util-linux"},
		{"bash", "bash"}, {"usermod", "passwd"},
	}
	if cfg.User != "" {
		tools = append(tools, struct{ name, pkg string }{"sudo", "sudo"}, struct{ name, pkg string }{"useradd", "passwd"})
	}
	if cfg.User != "" || cfg.Password {
		tools = append(tools, struct{ name, pkg string }{"chpasswd", "passwd"})
	}
	if cfg.Rate != "" {
		tools = append(tools, struct{ name, pkg string }{"tc", "iproute2"})
	}
	for _, t := range tools {
		if _, err := lookTool(t.name); err != nil {
			return NeedError{What: t.name, Fix: "apt-get install " + t.pkg}
		}
	}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(b), "\toverlay\n") {
		return NeedError{What: "overlayfs", Fix: "load it: modprobe overlay"}
	}
	return nil
}

// Up builds and starts a lab. On failure it removes what it made.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, InputError{err}
	}
	if err := CheckMachine(cfg); err != nil {
		return nil, err
	}
	start := time.Now()
	l, err := reserve(ctx, cfg)
	if err == nil {
		err = l.build(ctx)
	}
	if err != nil && l != nil { // the state file exists: remove what was made
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := Down(dctx, l.Name); derr != nil {
			return nil, fmt.Errorf("%w (and removing the partial lab: %v)", err, derr)
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	l.logf("lab %s up: %d hosts in %s in %s; inventory %s", l.Name, len(l.Hosts), l.Subnet, time.Since(start).Round(time.Millisecond), l.Inventory)
	return l, nil
}

func checkConfig(cfg *Config) error {
	if err := checkName("lab", cfg.Name, maxLabName); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if cfg.Masters < 0 || cfg.Nodes < 0 || cfg.Masters+cfg.Nodes == 0 {
		return fmt.Errorf("lab %s: want at least one host (masters %d, nodes %d)", cfg.Name, cfg.Masters, cfg.Nodes)
	}
	if nodeStart(cfg.Masters)+cfg.Nodes-1 > lastHost {
		return fmt.Errorf("lab %s: %d masters and %d nodes do not fit in one subnet (addresses .%d to .%d)", cfg.Name, cfg.Masters, cfg.Nodes, firstMaster, lastHost)
	}
	if cfg.Dir == "" {
		cfg.Dir = defaultDir(cfg.Name)
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if err := checkDir(cfg.Dir); err != nil {
		return fmt.Errorf("lab %s: %w", cfg.Name, err)
	}
	if cfg.User != "" {
		if err := checkUser(cfg.User); err != nil {
			return fmt.Errorf("lab %s: %w", cfg.Name, err)
		}
	}
	if cfg.Rate != "" {
		cfg.Rate = strings.ToLower(strings.TrimSpace(cfg.Rate))
		if _, err := parseRate(cfg.Rate); err != nil {
			return fmt.Errorf("lab %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// reserve claims the lab's name, subnet and network namespaces under the
// registry lock and writes the state file, so that Down can remove the lab
// from here on. It returns a non-nil Lab (maybe with an error) once the
// state file is written.
func reserve(ctx context.Context, cfg Config) (*Lab, error) {
	unlock, err := lockRegistry()
	if err != nil {
		return nil, err
	}
	defer unlock()
	name := cfg.Name
	if _, err := os.Stat(statePath(name)); err == nil {
		return nil, InputError{fmt.Errorf("lab %s exists (%s): remove it with `sealflow lab down --name %s` or pick another name", name, statePath(name), name)}
	}
	others, err := labNames()
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if o != name && tag(o) == tag(name) {
			return nil, fmt.Errorf("lab name %s has the same short id as lab %s; pick another name", name, o)
		}
	}
	if _, err := net.InterfaceByName(bridgeName(name)); err == nil {
		return nil, fmt.Errorf("lab %s: bridge %s is left from an earlier lab of that name: run `sealflow lab down --name %s` first", name, bridgeName(name), name)
	}
	if ents, err := os.ReadDir(cfg.Dir); err == nil && len(ents) > 0 {
		return nil, InputError{fmt.Errorf("lab %s: dir %s is not empty; remove it, run `sealflow lab down --name %s`, or give another --dir", name, cfg.Dir, name)}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: dir %s: %w", name, cfg.Dir, err)
	}
	subnet, err := pickSubnet(name, cfg.Subnet)
	if err != nil {
		return nil, err
	}
	st := state{
		Name:      name,
		Dir:       cfg.Dir,
		Subnet:    subnet.String(),
		Gateway:   offsetAddr(subnet, 1).String(),
		Bridge:    bridgeName(name),
		User:      cfg.User,
		Password:  cfg.Password,
		HasPass:   cfg.Password || cfg.User != "",
		NodeStart: nodeStart(cfg.Masters),
		NodeStack: cfg.NodeStack || cfg.Systemd || cfg.KubeNode,
		Systemd:   cfg.Systemd || cfg.KubeNode,
		KubeNode:  cfg.KubeNode,
		Rate:      cfg.Rate,
	}
	if cfg.ControlNS {
		st.ControlNetns = controlNetnsName(name)
		st.ControlAddress = offsetAddr(subnet, controlOffset).String()
	}
	if st.NodeStack {
		hs, err := hierarchies()
		if err != nil {
			return nil, fmt.Errorf("lab %s: %w", name, err)
		}
		st.Hierarchies = hs
	}
	for i := range cfg.Masters {
		st.addHost("m"+strconv.Itoa(i+1), "masters", offsetAddr(subnet, firstMaster+i))
	}
	for i := range cfg.Nodes {
		st.addHost("n"+strconv.Itoa(i+1), "nodes", offsetAddr(subnet, st.NodeStart+i))
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "hosts"), 0o700); err != nil {
		return nil, fmt.Errorf("lab %s: create dir: %w", name, err)
	}
	if err := writeState(st); err != nil {
		return nil, err
	}
	l := newLab(st)
	l.log = cfg.Log
	// The first `ip netns add` of a machine sets up /run/netns; done at
	// once by several processes it stacks mounts. Under the lock it is not.
	for _, h := range st.Hosts {
		if err := run(ctx, "ip", "netns", "add", netnsName(name, h.Name)); err != nil {
			return l, fmt.Errorf("lab %s host %s: %w", name, h.Name, err)
		}
	}
	if st.ControlNetns != "" {
		if err := run(ctx, "ip", "netns", "add", st.ControlNetns); err != nil {
			return l, fmt.Errorf("lab %s control namespace: %w", name, err)
		}
	}
	return l, nil
}

func (st *state) addHost(name, group string, addr netip.Addr) hostState {
	st.NextIndex++
	h := hostState{Name: name, Address: addr.String(), Group: group, Index: st.NextIndex}
	if st.NodeStack {
		h.Cgroups = hostCgroups(st.Hierarchies, st.Name, name)
	}
	st.Hosts = append(st.Hosts, h)
	return h
}

// build makes the lab's files, bridge and hosts.
func (l *Lab) build(ctx context.Context) error {
	if _, err := writeKey(l.Key, "sealflow-lab-"+l.Name); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := makeBase(l.Dir); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if l.st.HasPass {
		l.Password = rand.Text()
		if err := os.WriteFile(filepath.Join(l.Dir, "password"), []byte(l.Password+"\n"), 0o600); err != nil {
			return fmt.Errorf("lab %s: write password: %w", l.Name, err)
		}
	}
	prefix, err := netip.ParsePrefix(l.Subnet)
	if err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	br := l.st.Bridge
	if err := run(ctx, "ip", "link", "add", br, "type", "bridge"); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := run(ctx, "ip", "addr", "add", fmt.Sprintf("%s/%d", l.Gateway, prefix.Bits()), "dev", br); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := run(ctx, "ip", "link", "set", br, "up"); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := l.startControl(ctx, prefix); err != nil {
		return fmt.Errorf("lab %s control namespace: %w", l.Name, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(startParallel)
	pidsOut := make([]int, len(l.st.Hosts))
	for i, h := range l.st.Hosts {
		g.Go(func() error {
			pid, err := l.startHost(gctx, h, prefix)
			pidsOut[i] = pid
			return err
		})
	}
	err = g.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.st.Hosts {
		l.st.Hosts[i].PID = pidsOut[i]
	}
	l.hostsFromState()
	if werr := writeState(l.st); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	if err := l.writeInventory(); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := l.writeKnownHosts(); err != nil {
		return fmt.Errorf("lab %s: %w", l.Name, err)
	}
	return nil
}

// startHost makes the host's files, plugs it into the bridge, starts its
// init and waits for its sshd. The host's network namespace exists.
func (l *Lab) startHost(ctx context.Context, h hostState, prefix netip.Prefix) (int, error) {
	fail := func(err error) (int, error) { return 0, fmt.Errorf("lab %s host %s: %w", l.Name, h.Name, err) }
	hd := hostDir(l.Dir, h.Name)
	if err := os.MkdirAll(hd, 0o700); err != nil {
		return fail(err)
	}
	if _, err := writeKey(filepath.Join(hd, "ssh_host_ed25519_key"), "root@"+h.Name); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(hd, "sshd_config"), []byte(l.sshdConfig(h)), 0o600); err != nil {
		return fail(err)
	}
	args := initArgs(l.Dir, l.Name, h.Name)
	if err := os.WriteFile(args[1], []byte(l.initScript(h, prefix)), 0o700); err != nil {
		return fail(err)
	}
	if l.st.NodeStack {
		if err := writeNodeFiles(hd); err != nil {
			return fail(err)
		}
		if err := makeCgroups(h.Cgroups); err != nil {
			return fail(err)
		}
	}
	ns, veth := netnsName(l.Name, h.Name), vethName(l.Name, h.Index)
	if err := run(ctx, "ip", "link", "add", veth, "master", l.st.Bridge, "up",
		"type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
		return fail(err)
	}
	if err := shapeLink(ctx, l.st.Rate, veth, ns, "eth0"); err != nil {
		return fail(err)
	}
	logPath := filepath.Join(hd, "init.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	ip, err := lookTool("ip")
	if err != nil {
		logf.Close()
		return fail(err)
	}
	// ip netns exec enters the network namespace; unshare makes the mount,
	// UTS and PID namespaces and forks bash as their PID 1. A session of
	// its own keeps the host alive when this process exits.
	argv := []string{ip, "netns", "exec", ns, "unshare", "--mount", "--uts", "--pid"}
	if l.st.NodeStack {
		argv = append(argv, "--cgroup")
	}
	argv = append(append(argv, "--fork", "--mount-proc", "--propagation", "private"), args...)
	if l.st.NodeStack {
		// Into the host's cgroups first: the cgroup namespace that unshare
		// makes is rooted where the process is.
		bash, err := lookTool("bash")
		if err != nil {
			logf.Close()
			return fail(err)
		}
		argv = append([]string{bash, "-c", cgroupJoinScript(h.Cgroups), "bash"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = toolEnv()
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fail(fmt.Errorf("start init: %w", err))
	}
	go cmd.Wait() // reap unshare when the host goes down, if we are still here

	ctx, cancel := context.WithTimeout(ctx, hostStartTimeout)
	defer cancel()
	pid, err := waitInit(ctx, cmd.Process.Pid, l.Name, h.Name)
	if err != nil {
		return fail(fmt.Errorf("%w%s", err, logTail(logPath)))
	}
	if err := waitSSH(ctx, h.Address, pid); err != nil {
		_, err = fail(fmt.Errorf("%w%s%s", err, logTail(logPath), logTail(filepath.Join(hd, "sshd.log"))))
		return pid, err
	}
	l.logf("lab %s: host %s (%s) up, init %d", l.Name, h.Name, h.Address, pid)
	return pid, nil
}

// waitInit waits for unshare (pid) to fork the host's init and returns the
// init's pid.
func waitInit(ctx context.Context, pid int, name, host string) (int, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, c := range children(pid) {
			if isInit(c, name, host) {
				return c, nil
			}
		}
		if !alive(pid) {
			return 0, errors.New("init exited before it started")
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for init: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// waitSSH waits until something listens on TCP port 22 in the network
// namespace of the host's init (read from /proc, so no packet goes out
// before the host's address is up), then checks that it accepts a
// connection from the machine.
func waitSSH(ctx context.Context, addr string, initPID int) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !listening(initPID, 22) {
		if !alive(initPID) {
			return errors.New("init exited")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for sshd to listen: %w", ctx.Err())
		case <-tick.C:
		}
	}
	target := net.JoinHostPort(addr, "22")
	c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("sshd listens but does not accept a connection from the machine: %w", err)
	}
	c.Close()
	return nil
}

// listening reports whether a TCP socket listens on port in the network
// namespace of pid.
func listening(pid, port int) bool {
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + f)
		if err != nil {
			continue
		}
		want := fmt.Sprintf(":%04X", port)
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) > 3 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// logTail returns the end of a log file, as text to append to an error.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "\n" + path + ":\n" + strings.TrimRight(string(b), "\n")
}
