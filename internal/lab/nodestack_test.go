package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// kubeletEnv names the kubelet binary TestNodeStack runs.
const kubeletEnv = "SEALFLOW_LAB_KUBELET"

// defaultKubelet is where the node stack's kubelet is built (see the skip
// message of TestNodeStack).
const defaultKubelet = "/var/cache/sealflow/nodestack/kubelet"

// machineSysctls returns machine-wide sysctls that the kubelet, systemd
// or its units would set.
func machineSysctls(t *testing.T) map[string]string {
	t.Helper()
	names := []string{"fs/protected_fifos", "fs/protected_hardlinks", "fs/protected_regular", "fs/protected_symlinks",
		"fs/nr_open", "fs/file-max", "fs/inotify/max_user_instances", "fs/inotify/max_user_watches",
		"kernel/printk", "kernel/core_pattern", "net/ipv4/ip_forward"}
	for _, s := range nodeSysctls() {
		names = append(names, s[0])
	}
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile("/proc/sys/" + n)
		must(t, err)
		out[n] = strings.TrimSpace(string(b))
	}
	return out
}

// nodeStackTools returns the paths of containerd, ctr and the kubelet, or
// skips the test saying how to get them.
func nodeStackTools(t *testing.T) (containerd, ctr, kubelet string) {
	t.Helper()
	const how = "apt-get install containerd runc; build the kubelet: cd /var/cache/sealflow/kube/v1.34.4/mod && " +
		`CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v1.34.4 ` +
		`-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34" -o ` + defaultKubelet +
		" k8s.io/kubernetes/cmd/kubelet (or set " + kubeletEnv + ")"
	var paths []string
	for _, n := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		p, err := lookTool(n)
		if err != nil {
			t.Skipf("no %s here (%v): %s", n, err, how)
		}
		paths = append(paths, p)
	}
	kubelet = os.Getenv(kubeletEnv)
	if kubelet == "" {
		for _, k := range []string{defaultKubelet, "/var/cache/sealflow/upstream/bin/kubelet"} {
			if _, err := os.Stat(k); err == nil {
				kubelet = k
				break
			}
		}
	}
	if _, err := os.Stat(kubelet); err != nil || kubelet == "" {
		t.Skipf("no kubelet here (%v): %s", err, how)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("no /bin/busybox for the test's image: apt-get install busybox-static")
	}
	return paths[0], paths[1], kubelet
}

// TestNodeStack runs containerd and the real kubelet in a NodeStack host,
// with a static pod from an image built here, and checks that the machine
// is left as it was: no cgroups, mounts or processes, the same sysctls.
func TestNodeStack(t *testing.T) {
	t.Parallel()
	sysBefore := machineSysctls(t)
	l := ForTest(t, Config{Name: "ns", Masters: 1, NodeStack: true})
	l.mu.Lock()
	cgroups := slices.Clone(l.st.Hosts[0].Cgroups)
	l.mu.Unlock()
	if len(cgroups) == 0 {
		t.Fatal("a NodeStack host has no cgroups in the state")
	}

	t.Run("host", func(t *testing.T) {
		// Its own cgroup namespace, rooted at its subtree, in every hierarchy.
		for line := range strings.SplitSeq(mustExec(t, l, "m1", "cat", "/proc/self/cgroup"), "\n") {
			if !strings.HasSuffix(line, ":/") {
				t.Errorf("cgroup of a process in the host: %q, want /", line)
			}
		}
		for _, c := range cgroups {
			if _, err := os.Stat(filepath.Join(c, "cgroup.procs")); err != nil {
				t.Errorf("host cgroup: %v", err)
			}
		}
		if got := mustExec(t, l, "m1", "cat", "/sys/fs/cgroup/cpuset/cpuset.cpus"); got == "" {
			t.Error("the host's cpuset has no cpus")
		}
		for _, d := range nodeDisks() {
			if fs := mustExec(t, l, "m1", "stat", "-f", "-c", "%T", "/"+d); fs == "overlayfs" {
				t.Errorf("/%s is on overlayfs", d)
			}
		}
		if got := mustExec(t, l, "m1", "findmnt", "-n", "-o", "PROPAGATION", "/"); got != "shared" {
			t.Errorf("propagation of / in the host: %q", got)
		}
		if _, err := l.Exec(testCtx(t), "m1", "sh", "-c", "echo 5 > /proc/sys/kernel/panic"); err == nil {
			t.Error("kernel.panic is writable in the host")
		}
		mid := mustExec(t, l, "m1", "cat", "/etc/machine-id")
		machine, _ := os.ReadFile("/etc/machine-id")
		if len(mid) != 32 || mid == strings.TrimSpace(string(machine)) {
			t.Errorf("machine-id of the host: %q (machine's %q)", mid, machine)
		}
		if uuid := mustExec(t, l, "m1", "cat", "/sys/class/dmi/id/product_uuid"); len(uuid) != 36 {
			t.Errorf("product_uuid of the host: %q", uuid)
		}
		// What a plan run on the lab sees.
		inv, err := os.ReadFile(l.Inventory)
		must(t, err)
		p, err := plans.Load("t.yaml", []byte("name: t\nsteps:\n  - {id: a, kind: shell, with: {run: 'true'}}\n"),
			plans.LoadOptions{Kinds: steps.Builtin(), Inventory: inv, InventoryFile: l.Inventory})
		if err != nil {
			t.Fatalf("the lab's inventory: %v\n%s", err, inv)
		}
		if len(p.Hosts) != 1 || p.Hosts[0].Labels[CgroupRootLabel] != "/" {
			t.Errorf("inventory labels: %+v\n%s", p.Hosts[0].Labels, inv)
		}
		if _, err := l.Exec(testCtx(t), "m1", "sh", "-c", "echo 'sealflow lab test: this line means /dev/kmsg was writable in a lab host' > /dev/kmsg"); err == nil {
			t.Error("/dev/kmsg is writable in the host")
		}
		mustExec(t, l, "m1", "test", "-c", "/dev/kmsg")
		mustExec(t, l, "m1", "test", "-d", "/sys/class/net/eth0")
	})

	t.Run("kubelet", func(t *testing.T) {
		runNodeStack(t, l, "m1", false)
		if got := machineSysctls(t); fmt.Sprint(got) != fmt.Sprint(sysBefore) {
			t.Errorf("machine sysctls with the kubelet running: %v, before %v", got, sysBefore)
		}
	})

	t.Run("add host", func(t *testing.T) {
		if _, err := l.AddHost(testCtx(t), "n9", "nodes"); err != nil {
			t.Fatal(err)
		}
		cg := l.hostCgroups("n9")
		if len(cg) != len(cgroups) {
			t.Fatalf("n9 cgroups %v", cg)
		}
		for _, c := range cg {
			if _, err := os.Stat(c); err != nil {
				t.Error(err)
			}
		}
		if got := mustExec(t, l, "n9", "sh", "-c", "grep -vc ':/$' /proc/self/cgroup || :"); got != "0" {
			t.Errorf("n9: %s processes outside the cgroup namespace root", got)
		}
	})

	t.Run("down", func(t *testing.T) {
		ctx := testCtx(t)
		var tree []string
		for _, c := range cgroups {
			tree = append(tree, cgroupTree(c)...)
		}
		procs := map[int]string{}
		for _, pid := range cgroupPIDs(tree) {
			procs[pid] = strings.Join(cmdline(pid), " ")
		}
		before := snapshot(l)
		if err := Down(ctx, l.Name); err != nil {
			t.Fatal(err)
		}
		checkGone(t, l.Name, l.Dir, before)
		for pid, args := range procs {
			if alive(pid) && strings.Join(cmdline(pid), " ") == args {
				t.Errorf("process %d left: %s", pid, args)
			}
		}
		for _, c := range cgroups {
			if _, err := os.Stat(c); err == nil {
				t.Errorf("cgroup %s left", c)
			}
		}
		if left := labCgroups(l.Name); len(left) > 0 {
			t.Errorf("cgroups left: %v", left)
		}
		if got := machineSysctls(t); fmt.Sprint(got) != fmt.Sprint(sysBefore) {
			t.Errorf("machine sysctls after down: %v, before %v", got, sysBefore)
		}
	})
}

func mustExecCtx(t *testing.T, ctx context.Context, l *Lab, host string, argv ...string) string {
	t.Helper()
	out, err := l.Exec(ctx, host, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostLog returns the end of a log file in host, for an error message.
func hostLog(ctx context.Context, l *Lab, host, path string) string {
	out, _ := l.Exec(context.WithoutCancel(ctx), host, "tail", "-n", "40", path)
	return "\n" + path + ":\n" + out
}

// waitPodRunning polls the kubelet's read-only /pods on addr until the pod
// called name is Running with its containers running.
func waitPodRunning(ctx context.Context, addr, name string) error {
	url := "http://" + net.JoinHostPort(addr, "10255") + "/pods"
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var list struct {
				Items []struct {
					Metadata struct{ Name string }
					Status   struct {
						Phase             string
						ContainerStatuses []struct {
							State struct {
								Running *struct{} `json:"running"`
							}
						}
					}
				}
			}
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if err == nil {
				last = fmt.Sprintf("%+v", list.Items)
				for _, p := range list.Items {
					if p.Metadata.Name == name && p.Status.Phase == "Running" && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil {
						return nil
					}
				}
			}
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s not running (last: %s): %w", name, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestSystemdHost boots systemd as the PID 1 of a host, starts a unit in
// it, and checks that down leaves the machine as it was.
func TestSystemdHost(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(systemdPath); err != nil {
		t.Skipf("no systemd here (%v): apt-get install systemd", err)
	}
	sysBefore := machineSysctls(t)
	l := ForTest(t, Config{Name: "sd", Masters: 1, Systemd: true})
	h := mustHost(t, l, "m1")
	l.mu.Lock()
	cgroups := slices.Clone(l.st.Hosts[0].Cgroups)
	l.mu.Unlock()

	if got := mustExec(t, l, "m1", "cat", "/proc/1/comm"); got != "systemd" {
		t.Fatalf("PID 1 of the host is %q", got)
	}
	if got, err := l.Exec(testCtx(t), "m1", "systemctl", "is-system-running", "--wait"); strings.TrimSpace(got) != "running" {
		failed, _ := l.Exec(testCtx(t), "m1", "systemctl", "--failed", "--no-pager")
		t.Errorf("systemctl is-system-running: %q (%v)\n%s", got, err, failed)
	}
	if out, err := sshBinary(t, l, "root", h, "", "systemctl", "is-active", "sealflow-lab-sshd"); err != nil || out != "active" {
		t.Errorf("over ssh, the lab's sshd unit: %q, %v", out, err)
	}
	mustExec(t, l, "m1", "sh", "-c", `printf '[Service]\nExecStart=/bin/sleep 600\n' > /etc/systemd/system/labtest.service && systemctl daemon-reload && systemctl start labtest`)
	if got := mustExec(t, l, "m1", "systemctl", "is-active", "labtest"); got != "active" {
		t.Errorf("labtest.service: %q", got)
	}
	var sd string
	for _, c := range cgroups {
		if strings.Contains(c, "/systemd/") {
			sd = c
		}
	}
	if _, err := os.Stat(filepath.Join(sd, "system.slice", "labtest.service")); err != nil {
		t.Errorf("the unit's cgroup is not in the host's subtree: %v", err)
	}
	t.Run("kubelet", func(t *testing.T) { runNodeStack(t, l, "m1", true) })

	before := snapshot(l)
	if err := Down(testCtx(t), l.Name); err != nil {
		t.Fatal(err)
	}
	checkGone(t, l.Name, l.Dir, before)
	for _, c := range cgroups {
		if _, err := os.Stat(c); err == nil {
			t.Errorf("cgroup %s left", c)
		}
	}
	if got := machineSysctls(t); fmt.Sprint(got) != fmt.Sprint(sysBefore) {
		t.Errorf("machine sysctls after down: %v, before %v", got, sysBefore)
	}
}

// TestNodeStackDownAfterCrash starts a NodeStack lab in a process that
// exits without removing it, loses the state file, and checks that Down
// still finds and removes the hosts' cgroups (killing what runs in them).
func TestNodeStackDownAfterCrash(t *testing.T) {
	t.Parallel()
	if err := CheckMachine(Config{NodeStack: true}); err != nil {
		t.Skipf("no lab here: %v", err)
	}
	name := "nscrash-" + randomSuffix()
	t.Cleanup(func() { Down(context.Background(), name) })
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, helperNodeStackEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("up in a child process: %v\n%s%s", err, out, stderr.String())
	}
	l, err := Open(name)
	must(t, err)
	var cgroups []string
	for _, h := range l.st.Hosts {
		cgroups = append(cgroups, h.Cgroups...)
	}
	if len(cgroups) == 0 {
		t.Fatal("no cgroups in the state of a NodeStack lab")
	}
	// A process in a host's cgroups but outside its namespaces.
	stray := exec.Command("bash", "-c", cgroupJoinScript(l.st.Hosts[0].Cgroups), "bash", "sleep", "600")
	must(t, stray.Start())
	t.Cleanup(func() { stray.Process.Kill(); stray.Wait() })
	time.Sleep(100 * time.Millisecond)
	if pids := cgroupPIDs(cgroups[:1]); !slices.Contains(pids, stray.Process.Pid) {
		t.Fatalf("the stray process %d is not in %s (%v)", stray.Process.Pid, cgroups[0], pids)
	}
	before := snapshot(l)
	must(t, os.Remove(statePath(name)))
	if err := Down(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	checkGone(t, name, defaultDir(name), before)
	if err := stray.Wait(); err == nil {
		t.Error("the stray process in the host's cgroups was not killed")
	}
	for _, c := range cgroups {
		if _, err := os.Stat(c); err == nil {
			t.Errorf("cgroup %s left", c)
		}
	}
	if left := labCgroups(name); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// runNodeStack starts containerd and the kubelet in host (as systemd units
// when withSystemd) with a static pod of an image built here, and waits
// until the pod runs, its cgroups in the host's subtree. It skips the test
// when the binaries are missing.
func runNodeStack(t *testing.T, l *Lab, host string, withSystemd bool) {
	t.Helper()
	containerd, ctr, kubelet := nodeStackTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := mustHost(t, l, host)
	dir := filepath.Join(l.Dir, "nodestack-test", host) // seen by the host at the same path
	must(t, os.MkdirAll(dir, 0o755))
	busybox, err := os.ReadFile("/bin/busybox")
	must(t, err)
	const image = "lab.local/busybox:1"
	writeOCIImage(t, filepath.Join(dir, "busybox.tar"), image, []string{"/bin/sleep", "3600"}, []ociFile{
		{Name: "bin/busybox", Body: busybox, Mode: 0o755},
		{Name: "bin/sh", Link: "busybox"},
		{Name: "bin/sleep", Link: "busybox"},
	})
	must(t, os.WriteFile(filepath.Join(dir, "containerd.toml"), []byte(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "`+image+`"
  # No CAP_SYS_RESOURCE here: runc cannot lower an oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`), 0o644))
	// The host's cgroupRoot comes from the lab's inventory.
	inv, err := os.ReadFile(l.Inventory)
	must(t, err)
	if !strings.Contains(string(inv), CgroupRootLabel+": /") {
		t.Fatalf("inventory without %s:\n%s", CgroupRootLabel, inv)
	}
	must(t, os.WriteFile(filepath.Join(dir, "kubelet.yaml"), []byte(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/kubernetes/manifests
cgroupRoot: /
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: `+h.Address+`
readOnlyPort: 10255
healthzBindAddress: 127.0.0.1
fileCheckFrequency: 1s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "sleeper.yaml"), []byte(`apiVersion: v1
kind: Pod
metadata: {name: sleeper, namespace: default}
spec:
  hostNetwork: true
  containers:
  - name: sleep
    image: `+image+`
    imagePullPolicy: Never
    command: ["/bin/sleep", "3600"]
`), 0o644))

	// start runs a daemon in host: a systemd unit, or a process of its own
	// session.
	start := func(name, cmd string) {
		if withSystemd {
			unit := fmt.Sprintf("[Service]\nExecStart=%s\nDelegate=yes\nKillMode=process\n", cmd)
			mustExecCtx(t, ctx, l, host, "sh", "-c", fmt.Sprintf("printf %s > /etc/systemd/system/lab-%s.service && systemctl daemon-reload && systemctl start lab-%s",
				quote(unit), name, name))
			return
		}
		mustExecCtx(t, ctx, l, host, "sh", "-c", fmt.Sprintf("setsid -f %s </dev/null >/var/log/%s.log 2>&1", cmd, name))
	}
	logOf := func(name string) string {
		if withSystemd {
			out, _ := l.Exec(context.WithoutCancel(ctx), host, "journalctl", "--no-pager", "-n", "40", "-u", "lab-"+name)
			return "\n" + out
		}
		return hostLog(ctx, l, host, "/var/log/"+name+".log")
	}

	t0 := time.Now()
	start("containerd", containerd+" --config "+filepath.Join(dir, "containerd.toml"))
	for {
		if _, err := l.Exec(ctx, host, ctr, "version"); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("containerd does not answer:%s", logOf("containerd"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("containerd up in %s", time.Since(t0).Round(time.Millisecond))
	mustExecCtx(t, ctx, l, host, ctr, "-n", "k8s.io", "images", "import", filepath.Join(dir, "busybox.tar"))
	mustExecCtx(t, ctx, l, host, "sh", "-c", "mkdir -p /etc/kubernetes/manifests && cp "+filepath.Join(dir, "sleeper.yaml")+" /etc/kubernetes/manifests/")

	t0 = time.Now()
	start("kubelet", kubelet+" --config "+filepath.Join(dir, "kubelet.yaml"))
	if err := waitPodRunning(ctx, h.Address, "sleeper-"+host); err != nil {
		t.Fatalf("%v%s", err, logOf("kubelet"))
	}
	t.Logf("kubelet: static pod Running %s after the kubelet started", time.Since(t0).Round(time.Millisecond))

	// The pod's cgroups are in the host's subtree on the machine.
	var mem string
	for _, c := range l.hostCgroups(host) {
		if strings.Contains(c, "/memory/") {
			mem = c
		}
	}
	if pods, _ := filepath.Glob(filepath.Join(mem, "kubepods", "besteffort", "pod*")); len(pods) == 0 {
		t.Errorf("no pod cgroup under %s/kubepods/besteffort", mem)
	}
}

// TestKubeNodeHost: a KubeNode host is a fresh machine for a node (no
// container runtime of the machine's, a default route on the lab's link
// without a gateway, its own address as resolver, /lib/modules) and the
// lab's inventory carries the plan vars this machine needs.
func TestKubeNodeHost(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(systemdPath); err != nil {
		t.Skipf("no systemd here (%v): apt-get install systemd", err)
	}
	l := ForTest(t, Config{Name: "kn", Masters: 1, KubeNode: true})
	h := mustHost(t, l, "m1")
	if got := mustExec(t, l, "m1", "cat", "/proc/1/comm"); got != "systemd" {
		t.Errorf("PID 1 of the host is %q", got)
	}
	for _, f := range machineRuntime() {
		if _, err := os.Stat(f); err != nil {
			continue // not on the machine either
		}
		if out, err := l.Exec(testCtx(t), "m1", "test", "-e", f); err == nil {
			t.Errorf("the machine's %s shows in the host %s", f, out)
		}
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the machine lost %s: %v", f, err)
		}
	}
	if got := mustExec(t, l, "m1", "ip", "-4", "route", "show", "default"); got != "default dev eth0 scope link" {
		t.Errorf("default route %q, want one on eth0 without a gateway", got)
	}
	if got := mustExec(t, l, "m1", "cat", "/etc/resolv.conf"); got != "nameserver "+h.Address {
		t.Errorf("resolv.conf %q, want the host's own address", got)
	}
	mustExec(t, l, "m1", "test", "-d", "/lib/modules")
	inv, err := os.ReadFile(l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range KubeNodeVars() {
		if !strings.Contains(string(inv), "  "+v.Name+": "+strconv.Quote(v.Value)+"\n") {
			t.Errorf("the inventory has no var %s:\n%s", v.Name, inv)
		}
	}
}
