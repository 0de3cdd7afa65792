package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/kubelab"
	"github.com/sealflow/sealflow/internal/lab"
)

// realMasters and realNodes: what fits 2 shared cores (about 0.5 GB and
// a good part of a core per master while the cluster comes up).
const (
	realMasters = 2
	realNodes   = 1
)

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

// realSnapshot adds to snapshot what the node stack touches: links,
// mounts, iptables rules, the runtime's and kubelet's real-disk dirs, the
// host's cgroups, and the runtime's leftovers.
func realSnapshot(t *testing.T, l *lab.Lab, host string) hostSnapshot {
	t.Helper()
	s := snapshot(t, l, host)
	s["links"] = labExec(t, l, host, "sh", "-c", "ip -o link | awk '{print $2}' | sed 's/@.*//' | sort")
	s["mounts"] = labExec(t, l, host, "sh", "-c", "findmnt -rn -o TARGET,FSTYPE | sort")
	s["iptables"] = labExec(t, l, host, "sh", "-c", "for v in iptables ip6tables; do for t in filter nat mangle raw; do $v-save -t $t 2>/dev/null | grep -v '^[#*:]' || :; done; done")
	s["disk dirs"] = labExec(t, l, host, "sh", "-c", "ls -A /var/lib/containerd /var/lib/kubelet /etc/cni /opt/cni /run/containerd 2>&1 || :")
	s["cgroups"] = labExec(t, l, host, "sh", "-c", "cd /sys/fs/cgroup && find memory cpu pids systemd -mindepth 1 -type d 2>/dev/null | grep -v -e '\\.scope$' -e '^[a-z]*/system.slice/' -e '^[a-z]*/user.slice' -e '^[a-z]*/init.scope' | sort")
	return s
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

func nodes(l *lab.Lab) ([]k8sNode, string) {
	out, err := kubectl(l, "m1", "get", "nodes", "-o", "json")
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

// runOrLogs runs sealflow and returns its stdout; on failure it fails the
// test with the output and the end of every task log of the run.
func runOrLogs(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	// Longer than sf's 5 minutes: the run ends with the verify step.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out, errOut, code := stdout.String(), stderr.String(), -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if err == nil {
		return out
	}
	var logs strings.Builder
	files, _ := filepath.Glob(filepath.Join(dir, ".sealflow*", "logs", "*", "*.log"))
	files2, _ := filepath.Glob(filepath.Join(dir, "*", "logs", "*", "*.log"))
	for _, f := range append(files, files2...) {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&logs, "--- %s\n%s\n", f, strings.Join(lines, "\n"))
	}
	t.Fatalf("sealflow %s: exit %d\n%s\n%s\n%s", strings.Join(args, " "), code, out, errOut, logs.String())
	return ""
}

// TestHAOnRealStack builds a highly available cluster with plans/ha.yaml
// from the real offline package (the one `sealflow package build` makes)
// on lab hosts that run systemd, containerd, runc and the real kubelet,
// with every kubeadm preflight check; the pod network (flannel, the plan's
// cni step) makes the nodes Ready; kube-proxy, CoreDNS, the lvscare static
// pod, pod-to-pod traffic across nodes and a Service work; clean leaves
// every host as the lab made it and the machine as it was.
func TestHAOnRealStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Kubernetes cluster")
	}
	start := time.Now()
	pkg := kubelab.RealPackageCopy(t)
	bin := sealflowBin(t)
	dir := t.TempDir()

	// The lvscare static pod's image: the package's sealflow image.
	var info struct {
		Images []struct{ Ref, From string }
	}
	if err := json.Unmarshal([]byte(mustSF(t, bin, dir, "package", "inspect", "--json", pkg)), &info); err != nil {
		t.Fatal(err)
	}
	var lvscareImage string
	for _, im := range info.Images {
		if im.From == "sealflow" {
			lvscareImage = im.Ref
		}
	}
	if lvscareImage == "" {
		t.Fatalf("the package has no sealflow image: %+v", info.Images)
	}

	machineBefore := machineState(t)
	l := kubelab.RealStackLab(t, "real", realMasters, realNodes)
	var names []string
	before := map[string]hostSnapshot{}
	for _, h := range l.Hosts {
		names = append(names, h.Name)
		before[h.Name] = realSnapshot(t, l, h.Name)
	}
	common := []string{"--output", "plain", "--known-hosts", l.KnownHosts}
	vars := []string{"--set", "pkg=" + pkg, "--set", "version=" + kubeVersion, "--set", "lvscare_image=" + lvscareImage}
	for _, v := range kubelab.RealStackVars() {
		vars = append(vars, "--set", v)
	}
	runArgs := append(append([]string{"run", "-i", l.Inventory}, common...), vars...)

	// First without the pod network: every node joins, none is Ready.
	t0 := time.Now()
	out := runOrLogs(t, bin, dir, append(runArgs, "--set", "cni_manifest=", "--set", "verify=false", "ha")...)
	t.Logf("run ha without the pod network: %s", time.Since(t0).Round(time.Second))
	t.Logf("first run:\n%s", out)
	ns, seen := nodes(l)
	if len(ns) != len(names) {
		t.Fatalf("%d nodes after the run, want %d:\n%s", len(ns), len(names), seen)
	}
	for _, n := range ns {
		if r, why := ready(n); r || !strings.Contains(why, "network") {
			t.Errorf("node %s without a pod network: ready=%v (%s), want NotReady for the network", n.Metadata.Name, r, why)
		}
	}

	// Then the plan with its cni step: flannel from the package.
	t1 := time.Now()
	// It ends with the verify step: every node Ready, kube-system Running,
	// pod to pod across nodes, the Service from every node, DNS, the VIP.
	out = runOrLogs(t, bin, dir, append(runArgs, "ha")...)
	if !strings.Contains(out, "done      cni@m1") {
		t.Errorf("the second run did not apply the pod network:\n%s", out)
	}
	if !strings.Contains(out, "done      verify@m1") {
		t.Errorf("the second run did not pass the verify step:\n%s", out)
	}
	if strings.Contains(out, "done      kubeadm-init@m1") || strings.Contains(out, "done      join-") {
		t.Errorf("the second run ran kubeadm again:\n%s", out)
	}
	waitUntil(t, "every node Ready", 6*time.Minute, func() (bool, string) {
		ns, seen := nodes(l)
		if len(ns) != len(names) {
			return false, seen
		}
		for _, n := range ns {
			if r, _ := ready(n); !r {
				return false, seen
			}
		}
		return true, seen
	})
	t.Logf("nodes Ready %s after the cni step started (%s after the first run started)", time.Since(t1).Round(time.Second), time.Since(t0).Round(time.Second))
	ns, seen = nodes(l)
	for _, n := range ns {
		if got := n.Status.NodeInfo.ContainerRuntimeVersion; got != "containerd://2.2.9" {
			t.Errorf("node %s runs %q, want containerd://2.2.9", n.Metadata.Name, got)
		}
	}
	wide, _ := kubectl(l, "m1", "get", "nodes", "-o", "wide")
	t.Logf("kubectl get nodes -o wide:\n%s", wide)

	// Every system pod Running: etcd, apiservers, kube-proxy, CoreDNS, flannel, lvscare.
	waitUntil(t, "every kube-system and kube-flannel pod Running", 5*time.Minute, func() (bool, string) {
		ps, seen := pods(l, "-A")
		count := map[string]int{}
		for _, p := range ps {
			if p.Metadata.Namespace != "kube-system" && p.Metadata.Namespace != "kube-flannel" {
				continue
			}
			if !running(p) {
				return false, seen
			}
			name := p.Metadata.Name
			for _, prefix := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "coredns", "kube-flannel-ds", "kube-lvscare"} {
				if strings.HasPrefix(name, prefix) {
					count[prefix]++
				}
			}
		}
		want := map[string]int{"etcd": realMasters, "kube-apiserver": realMasters, "kube-controller-manager": realMasters,
			"kube-scheduler": realMasters, "kube-proxy": len(names), "coredns": 2, "kube-flannel-ds": len(names), "kube-lvscare": realNodes}
		return fmt.Sprint(count) == fmt.Sprint(want), fmt.Sprintf("running %v, want %v\n%s", count, want, seen)
	})
	for _, h := range l.Hosts {
		t.Logf("memory of %s: %s", h.Name, memoryOf(l, h.Name))
	}

	// lvscare runs on each worker from the package's sealflow image.
	ps, seen := pods(l, "-n", "kube-system")
	for _, h := range l.Hosts[realMasters:] {
		found := false
		for _, p := range ps {
			if p.Metadata.Name == "kube-lvscare-"+h.Name {
				found = true
				if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].Image != lvscareImage {
					t.Errorf("lvscare on %s: %+v, want image %s", h.Name, p.Status.ContainerStatuses, lvscareImage)
				}
			}
		}
		if !found {
			t.Errorf("no lvscare pod on %s:\n%s", h.Name, seen)
		}
		if got := labExec(t, l, h.Name, "crictl", "ps", "--name", "lvscare", "-o", "json"); !strings.Contains(got, `"state": "CONTAINER_RUNNING"`) {
			t.Errorf("crictl on %s shows no running lvscare container:\n%s", h.Name, got)
		}
	}

	// A pod on the worker reaches a pod on the first master, directly and
	// through a Service; CoreDNS answers for kubernetes.default.
	worker := l.Hosts[realMasters].Name
	const toolbox = "docker.io/library/busybox:1.36.1"
	podYAML := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  nodeName: m1
  tolerations: [{operator: Exists}]
  containers:
  - name: web
    image: %[1]s
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo hello-from-m1 > /www/index.html && exec httpd -f -p 8080 -h /www']
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  nodeName: %[2]s
  containers:
  - name: client
    image: %[1]s
    imagePullPolicy: Never
    command: [sleep, "3600"]
`, toolbox, worker)
	cmd, err := l.Command(context.Background(), "m1", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(podYAML)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply the test pods: %v\n%s", err, b)
	}
	var webIP string
	waitUntil(t, "the test pods Running", 3*time.Minute, func() (bool, string) {
		ps, seen := pods(l, "-n", "default")
		n := 0
		for _, p := range ps {
			if running(p) {
				n++
				if p.Metadata.Name == "web" {
					webIP = p.Status.PodIP
				}
			}
		}
		return n == 2, seen
	})
	inPod := func(args ...string) (string, error) {
		return kubectl(l, "m1", append([]string{"exec", "client", "--"}, args...)...)
	}
	get := func(addr, port string) (string, error) {
		return inPod("sh", "-c", `printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 5 "$0" "$1"`, addr, port)
	}
	waitUntil(t, "the worker's pod reaching the master's pod", time.Minute, func() (bool, string) {
		out, err := get(webIP, "8080")
		return err == nil && strings.Contains(out, "hello-from-m1"), fmt.Sprint(out, err)
	})
	svcIP, err := kubectl(l, "m1", "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the Service's ClusterIP answering", time.Minute, func() (bool, string) {
		out, err := get(strings.TrimSpace(svcIP), "80")
		return err == nil && strings.Contains(out, "hello-from-m1"), fmt.Sprint(out, err)
	})
	waitUntil(t, "CoreDNS resolving kubernetes.default", time.Minute, func() (bool, string) {
		out, err := inPod("nslookup", "kubernetes.default.svc.cluster.local")
		return err == nil && strings.Contains(out, "10.96.0.1"), fmt.Sprint(out, err)
	})
	waitUntil(t, "CoreDNS resolving the Service", time.Minute, func() (bool, string) {
		out, err := inPod("nslookup", "web.default.svc.cluster.local")
		return err == nil && strings.Contains(out, strings.TrimSpace(svcIP)), fmt.Sprint(out, err)
	})
	t.Logf("cluster checked %s after the first run started", time.Since(t0).Round(time.Second))

	// clean: every host as the lab made it, the machine as it was.
	t2 := time.Now()
	runOrLogs(t, bin, dir, append([]string{"run", "--state", "clean", "-i", l.Inventory}, append(common, "clean")...)...)
	t.Logf("run clean: %s", time.Since(t2).Round(time.Second))
	for _, h := range l.Hosts {
		if d := diffSnapshots(before[h.Name], realSnapshot(t, l, h.Name)); d != "" {
			t.Errorf("%s after clean differs from the lab's host:\n%s", h.Name, d)
		}
	}
	after := machineState(t)
	var changed []string
	for k, v := range machineBefore {
		if after[k] != v {
			changed = append(changed, fmt.Sprintf("%s: %s, before %s", k, after[k], v))
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("the machine changed:\n%s", strings.Join(changed, "\n"))
	}
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}
