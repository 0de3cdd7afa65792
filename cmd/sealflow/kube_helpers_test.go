package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/testutil"
)

// What the Kubernetes tests (ha_e2e_test.go) see of a lab and a cluster.

const (
	kubeVersion = "v1.34.4"
	vip         = "10.255.255.253"
)

// hostSnapshot is what a lab host looks like from outside: the files it
// wrote (its overlay upper dirs), its routes, addresses, links, mounts,
// kernel rules (nftables, iptables), the runtime's and kubelet's real-disk
// dirs, its cgroups and processes.
type hostSnapshot map[string]string

func snapshot(t *testing.T, l *lab.Lab, host string) hostSnapshot {
	t.Helper()
	s := hostSnapshot{}
	upper := filepath.Join(l.Dir, "hosts", host, "upper")
	var files []string
	for _, dir := range l.UpperDirs(host) {
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || p == dir {
				return nil
			}
			rel, _ := filepath.Rel(upper, p)
			// Logins leave their traces in /var/log (lastlog, wtmp, btmp).
			if strings.HasPrefix(rel, "var/log/") {
				return nil
			}
			switch {
			case fi.Mode()&os.ModeCharDevice != 0:
				files = append(files, "deleted /"+rel) // an overlay whiteout
			case fi.IsDir():
				// A directory of the machine copied up is no change by itself.
				if st, err := os.Stat("/" + rel); err != nil || !st.IsDir() || strings.HasPrefix(rel, "root/") || strings.HasPrefix(rel, "home/") {
					files = append(files, "dir /"+rel)
				}
			case fi.Mode().IsRegular():
				b, _ := os.ReadFile(p)
				// A machine file put back as it was is no change.
				if m, err := os.ReadFile("/" + rel); err == nil && bytes.Equal(m, b) {
					return nil
				}
				files = append(files, fmt.Sprintf("file /%s %x", rel, sha256.Sum256(b)))
			default:
				target, _ := os.Readlink(p)
				if m, err := os.Readlink("/" + rel); err == nil && m == target {
					return nil
				}
				files = append(files, "link /"+rel+" -> "+target)
			}
			return nil
		})
	}
	sort.Strings(files)
	s["files"] = strings.Join(files, "\n")
	s["/etc/hosts"] = labExec(t, l, host, "cat", "/etc/hosts")
	s["routes"] = labExec(t, l, host, "ip", "-4", "route", "show", "table", "all")
	s["addresses"] = labExec(t, l, host, "sh", "-c", "ip -4 -o addr | awk '{print $2, $4}'")
	s["rules"] = labExec(t, l, host, "nft", "list", "ruleset")
	s["links"] = labExec(t, l, host, "sh", "-c", "ip -o link | awk '{print $2}' | sed 's/@.*//' | sort")
	s["mounts"] = labExec(t, l, host, "sh", "-c", "findmnt -rn -o TARGET,FSTYPE | sort")
	s["iptables"] = labExec(t, l, host, "sh", "-c", "for v in iptables ip6tables; do for t in filter nat mangle raw; do $v-save -t $t 2>/dev/null | grep -v '^[#*:]' || :; done; done")
	s["disk dirs"] = labExec(t, l, host, "sh", "-c", "ls -A /var/lib/containerd /var/lib/kubelet /etc/cni /opt/cni /run/containerd 2>&1 || :")
	s["cgroups"] = labExec(t, l, host, "sh", "-c", "cd /sys/fs/cgroup && find memory cpu pids systemd -mindepth 1 -type d 2>/dev/null | grep -v -e '\\.scope$' -e '^[a-z]*/system.slice/' -e '^[a-z]*/user.slice' -e '^[a-z]*/init.scope' | sort")
	s["processes"] = labExec(t, l, host, "sh", "-c", processList)
	return s
}

// processList lists a host's programs by name, without the ones this
// command and the login that runs it start (ps, the pipeline's own grep,
// sort and sh, sshd, systemd's per-login workers).
const processList = "ps -eo comm= | grep -v -x -e ps -e sh -e sshd -e awk -e sort -e grep -e systemd-userwor | sort"

func diffSnapshots(before, after hostSnapshot) string {
	var out []string
	for k, b := range before {
		if a := after[k]; a != b {
			out = append(out, fmt.Sprintf("%s before:\n%s\n%s after:\n%s", k, b, k, a))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// waitUntil polls cond (bounded) and fails the test with what it saw.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() (bool, string)) {
	t.Helper()
	testutil.Eventually(t, what, limit, time.Second, func() error {
		if ok, seen := cond(); !ok {
			return fmt.Errorf("last seen:\n%s", seen)
		}
		return nil
	})
}

// machineState is what of the machine itself a lab host could change:
// sysctls that are not namespaced (the kubelet, kube-proxy and systemd
// set some) and nf_conntrack's hash size.
func machineState(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{
		"/proc/sys/kernel/panic", "/proc/sys/kernel/panic_on_oops", "/proc/sys/vm/overcommit_memory",
		"/proc/sys/vm/panic_on_oom", "/proc/sys/kernel/keys/root_maxkeys", "/proc/sys/kernel/keys/root_maxbytes",
		"/proc/sys/fs/inotify/max_user_instances", "/proc/sys/fs/inotify/max_user_watches", "/proc/sys/fs/file-max",
		"/proc/sys/net/netfilter/nf_conntrack_max", "/proc/sys/net/ipv4/ip_forward",
		"/proc/sys/net/bridge/bridge-nf-call-iptables", "/sys/module/nf_conntrack/parameters/hashsize",
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			out[f] = "unreadable: " + err.Error()
			continue
		}
		out[f] = strings.TrimSpace(string(b))
	}
	return out
}

type k8sNode struct {
	Metadata struct{ Name string }
	Status   struct {
		Conditions []struct{ Type, Status, Reason, Message string }
		NodeInfo   struct{ ContainerRuntimeVersion string }
	}
}

type k8sPod struct {
	Metadata struct{ Name, Namespace string }
	Spec     struct{ NodeName string }
	Status   struct {
		Phase             string
		PodIP             string
		ContainerStatuses []struct {
			Name, Image string
			Ready       bool
			State       map[string]json.RawMessage
		}
	}
}

// kubectl runs kubectl as the cluster admin on host.
func kubectl(l *lab.Lab, host string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return l.Exec(ctx, host, append([]string{"kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "--request-timeout", "30s"}, args...)...)
}

// nodes are the cluster's nodes as m1's apiserver says.
func nodes(l *lab.Lab) ([]k8sNode, string) { return nodesOn(l, "m1") }

// nodesOn asks master's apiserver.
func nodesOn(l *lab.Lab, master string) ([]k8sNode, string) {
	out, err := kubectl(l, master, "get", "nodes", "-o", "json")
	if err != nil {
		return nil, out + err.Error()
	}
	var list struct{ Items []k8sNode }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, out + err.Error()
	}
	return list.Items, summarizeNodes(list.Items)
}

func ready(n k8sNode) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True", c.Reason + ": " + c.Message
		}
	}
	return false, "no Ready condition"
}

func summarizeNodes(ns []k8sNode) string {
	var b strings.Builder
	for _, n := range ns {
		r, why := ready(n)
		fmt.Fprintf(&b, "%s ready=%v %s (%s)\n", n.Metadata.Name, r, n.Status.NodeInfo.ContainerRuntimeVersion, why)
	}
	return b.String()
}

func pods(l *lab.Lab, args ...string) ([]k8sPod, string) {
	out, err := kubectl(l, "m1", append([]string{"get", "pods", "-o", "json"}, args...)...)
	if err != nil {
		return nil, out + err.Error()
	}
	var list struct{ Items []k8sPod }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, out + err.Error()
	}
	var b strings.Builder
	for _, p := range list.Items {
		fmt.Fprintf(&b, "%s/%s on %s: %s", p.Metadata.Namespace, p.Metadata.Name, p.Spec.NodeName, p.Status.Phase)
		for _, c := range p.Status.ContainerStatuses {
			for st := range c.State {
				fmt.Fprintf(&b, " %s=%s", c.Name, st)
			}
		}
		b.WriteString("\n")
	}
	return list.Items, b.String()
}

func running(p k8sPod) bool {
	if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if _, ok := c.State["running"]; !ok || !c.Ready {
			return false
		}
	}
	return true
}

// memoryOf returns the memory a lab host uses: its memory cgroup (the
// root of the host's cgroup namespace), rss and page cache.
func memoryOf(l *lab.Lab, host string) string {
	out, err := l.Exec(context.Background(), host, "sh", "-c", "grep -E '^total_(rss|cache) ' /sys/fs/cgroup/memory/memory.stat")
	if err != nil {
		return "? " + err.Error()
	}
	var parts []string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var k string
		var n int64
		fmt.Sscan(line, &k, &n)
		parts = append(parts, fmt.Sprintf("%s %d MiB", strings.TrimPrefix(k, "total_"), n>>20))
	}
	return strings.Join(parts, ", ")
}

// runSF runs sealflow for as long as a cluster takes (sf allows 5
// minutes) and returns its stdout and stderr; an exit code other than want
// fails the test: its output and the end of each task log it wrote are
// logged, and the failure itself, last, is the end of its output.
func runSF(t *testing.T, bin, dir string, want int, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now().Add(-time.Second) // mtimes may be coarser
	err := cmd.Run()
	out, errOut, code := stdout.String(), stderr.String(), -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if code == want {
		return out, errOut
	}
	if err == nil {
		err = fmt.Errorf("exit 0, want %d", want)
	}
	var logs strings.Builder
	files, _ := filepath.Glob(filepath.Join(dir, "*", "logs", "*", "*.log")) // * matches .sealflow too
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.ModTime().Before(started) {
			continue
		}
		b, _ := os.ReadFile(f)
		fmt.Fprintf(&logs, "--- %s\n%s\n", f, lastLines(string(b), 40))
	}
	line := "sealflow " + strings.Join(args, " ")
	t.Logf("%s: its output:\n%s\n%s\nthe end of each task log it wrote:\n%s", line, out, errOut, logs.String())
	t.Fatalf("%s: exit %d (%v), want %d; the end of its output:\n%s\n%s", line, code, err, want, lastLines(out, 15), lastLines(errOut, 10))
	return "", ""
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// allReady says whether the cluster has want nodes, every one Ready.
func allReady(l *lab.Lab, want int) (bool, string) {
	ns, seen := nodes(l)
	if len(ns) != want {
		return false, seen
	}
	for _, n := range ns {
		if r, _ := ready(n); !r {
			return false, seen
		}
	}
	return true, seen
}

// systemPods says whether every pod of kube-system and kube-flannel runs,
// and as many of each as a cluster of masters and workers has.
func systemPods(l *lab.Lab, masters, workers int) (bool, string) {
	ps, seen := pods(l, "-A")
	count := map[string]int{}
	for _, p := range ps {
		if p.Metadata.Namespace != "kube-system" && p.Metadata.Namespace != "kube-flannel" {
			continue
		}
		if !running(p) {
			return false, seen
		}
		for _, prefix := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "kube-flannel-ds", "kube-lvscare"} {
			if strings.HasPrefix(p.Metadata.Name, prefix) {
				count[prefix]++
			}
		}
	}
	want := map[string]int{"etcd": masters, "kube-apiserver": masters, "kube-controller-manager": masters,
		"kube-scheduler": masters, "kube-proxy": masters + workers, "coredns": 2, "kube-flannel-ds": masters + workers, "kube-lvscare": workers}
	return fmt.Sprint(count) == fmt.Sprint(want), fmt.Sprintf("running %v, want %v\n%s", count, want, seen)
}

// apply runs kubectl apply of manifest on host.
func apply(t *testing.T, l *lab.Lab, host, manifest string) {
	t.Helper()
	cmd, err := l.Command(context.Background(), host, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "--request-timeout", "30s", "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(manifest)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply on %s: %v\n%s", host, err, b)
	}
}

func mustKubectl(t *testing.T, l *lab.Lab, host string, args ...string) string {
	t.Helper()
	out, err := kubectl(l, host, args...)
	if err != nil {
		t.Fatalf("kubectl %s on %s: %v\n%s", strings.Join(args, " "), host, err, out)
	}
	return out
}

// httpGet sends GET / to addr:port from host's own network (bash's
// /dev/tcp: no client program needed) and returns the body's last line.
func httpGet(l *lab.Lab, host, addr string, port int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, host, "timeout", "10", "bash", "-c",
		`exec 3<>"/dev/tcp/$0/$1" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && tail -n 1 <&3`, addr, fmt.Sprint(port))
	return strings.TrimSpace(out), err
}
