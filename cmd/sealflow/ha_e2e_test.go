package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/kubelab"
	"github.com/sealflow/sealflow/internal/lab"
)

// TestHAClusterOnLab builds a highly available cluster with plans/ha.yaml
// from the offline package `sealflow package build` makes, on 3 masters
// and 2 workers that run systemd, containerd, runc and the real kubelet,
// with every kubeadm preflight check on:
//   - a failure at the second master's join, then resume: kubeadm init ran
//     once; every node joined, NotReady without a pod network;
//   - the plan's cni step (flannel from the package) makes them Ready; its
//     verify step passes; 3 etcd members; kube-proxy, CoreDNS, flannel and
//     the lvscare static pod (the package's image) run;
//   - workers reach the masters through the VIP; with m1's apiserver
//     stopped a Deployment keeps serving through its Service and the
//     kubelets keep renewing their Leases through the VIP;
//   - verify fails, naming the check and the node, when the pod network's
//     agent is kept off a worker; a run after that changes nothing;
//   - add-node; clean leaves every host as the lab made it and the
//     machine's settings as they were.
func TestHAClusterOnLab(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Kubernetes cluster")
	}
	start := time.Now()
	pkg := kubelab.RealPackageCopy(t)
	bin := sealflowBin(t)
	dir := t.TempDir()
	lvscareImage := packageImage(t, bin, dir, pkg, "sealflow")

	machineBefore := machineState(t)
	l := kubelab.RealStackLab(t, "ha", 3, 2)
	before := map[string]hostSnapshot{}
	for _, h := range l.Hosts {
		before[h.Name] = snapshot(t, l, h.Name)
	}
	m1, m2 := l.Hosts[0], l.Hosts[1]
	common := []string{"--output", "plain", "--known-hosts", l.KnownHosts}
	vars := []string{"--set", "pkg=" + pkg, "--set", "version=" + kubeVersion, "--set", "lvscare_image=" + lvscareImage}
	runArgs := append(append([]string{"run", "-i", l.Inventory}, common...), vars...)

	// A failure injected at the second master's join (a kubeadm that fails
	// first on m2's PATH), in a run without the pod network.
	labExec(t, l, "m2", "sh", "-c", `printf '#!/bin/sh\necho "injected failure" >&2\nexit 1\n' > /usr/local/bin/kubeadm && chmod +x /usr/local/bin/kubeadm`)
	t0 := time.Now()
	out, _ := runSF(t, bin, dir, 1, append(runArgs, "--set", "cni_manifest=", "--set", "verify=false", "ha")...)
	if !strings.Contains(out, "FAILED    join-masters@m2") {
		t.Fatalf("with a failing join on m2: want join-masters@m2 failed\n%s", out)
	}
	// Masters join one at a time, in the order they are ready: m3 may
	// have joined before m2; nothing starts after m2's failure.
	if _, after, _ := strings.Cut(out, "FAILED    join-masters@m2"); strings.Contains(after, "start     join-") {
		t.Errorf("a join started after m2's failed:\n%s", out)
	}
	// The package went by relay: the control machine fed one host, each
	// other pulled it from a host.
	fed, pulled := 0, 0
	for _, h := range l.Hosts {
		log := readFile(t, filepath.Join(dir, ".sealflow", "logs", "upload", h.Name+".log"))
		fed += strings.Count(log, "relay: fed by the control machine")
		pulled += strings.Count(log, "relay: pulls from ")
	}
	if fed != 1 || pulled != len(l.Hosts)-1 {
		t.Errorf("the package: %d hosts fed by the control machine, %d by another host; want 1 and %d (relay)", fed, pulled, len(l.Hosts)-1)
	}
	labExec(t, l, "m2", "rm", "/usr/local/bin/kubeadm")
	out, _ = runSF(t, bin, dir, 0, append([]string{"resume"}, common...)...)
	if !strings.Contains(out, "unchanged kubeadm-init@m1") {
		t.Errorf("resume did not keep kubeadm init:\n%s", out)
	}
	inits := 0
	for _, r := range journalRecords(t, filepath.Join(dir, ".sealflow")) {
		if r.Step == "kubeadm-init" && r.Event == journal.Started {
			inits++
		}
	}
	if inits != 1 {
		t.Errorf("kubeadm-init started %d times, want once", inits)
	}
	t.Logf("run ha and resume, without the pod network: %s", time.Since(t0).Round(time.Second))
	ns, seen := nodes(l)
	if len(ns) != len(l.Hosts) {
		t.Fatalf("%d nodes after the run, want %d:\n%s", len(ns), len(l.Hosts), seen)
	}
	for _, n := range ns {
		if r, why := ready(n); r || !strings.Contains(why, "network") {
			t.Errorf("node %s without a pod network: ready=%v (%s), want NotReady for the network", n.Metadata.Name, r, why)
		}
	}

	// The plan with its cni step and verify: nodes Ready, kubeadm not again.
	t1 := time.Now()
	out, _ = runSF(t, bin, dir, 0, append(runArgs, "ha")...)
	for _, want := range []string{"done      cni@m1", "done      verify@m1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the run with the pod network: no %q\n%s", want, out)
		}
	}
	if strings.Contains(out, "done      kubeadm-init@m1") || strings.Contains(out, "done      join-") {
		t.Errorf("the run with the pod network ran kubeadm again:\n%s", out)
	}
	t.Logf("run ha with the pod network, to verify passed: %s (%s since the first run)", time.Since(t1).Round(time.Second), time.Since(t0).Round(time.Second))
	waitUntil(t, "every node Ready", 3*time.Minute, func() (bool, string) { return allReady(l, len(l.Hosts)) })
	ns, _ = nodes(l)
	for _, n := range ns {
		if got := n.Status.NodeInfo.ContainerRuntimeVersion; got != "containerd://2.2.9" {
			t.Errorf("node %s runs %q, want containerd://2.2.9", n.Metadata.Name, got)
		}
	}
	wide, _ := kubectl(l, "m1", "get", "pods", "-A", "-o", "wide")
	t.Logf("kubectl get pods -A -o wide:\n%s", wide)
	waitUntil(t, "every system pod Running", 5*time.Minute, func() (bool, string) { return systemPods(l, 3, 2) })
	for _, h := range l.Hosts {
		t.Logf("memory of %s: %s", h.Name, memoryOf(l, h.Name))
	}
	members, err := kubectl(l, "m1", "exec", "-n", "kube-system", "etcd-m1", "--", "etcdctl", "--endpoints=https://127.0.0.1:2379",
		"--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
		"--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "member", "list")
	if n := strings.Count(strings.TrimSpace(members), "\n") + 1; err != nil || n != 3 {
		t.Errorf("etcd has %d members, want 3: %v\n%s", n, err, members)
	}

	// lvscare runs on each worker from the package's sealflow image and
	// balances the VIP over the three masters; workers join through it.
	ps, seen := pods(l, "-n", "kube-system")
	for _, n := range []string{"n1", "n2"} {
		found := false
		for _, p := range ps {
			if p.Metadata.Name == "kube-lvscare-"+n {
				found = true
				if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].Image != lvscareImage {
					t.Errorf("lvscare on %s: %+v, want image %s", n, p.Status.ContainerStatuses, lvscareImage)
				}
			}
		}
		if !found {
			t.Errorf("no lvscare pod on %s:\n%s", n, seen)
		}
		if got := labExec(t, l, n, "crictl", "ps", "--name", "lvscare", "-o", "json"); !strings.Contains(got, `"state": "CONTAINER_RUNNING"`) {
			t.Errorf("crictl on %s shows no running lvscare container:\n%s", n, got)
		}
		if got := labExec(t, l, n, "sh", "-c", "grep -h 'server:' /etc/kubernetes/kubelet.conf; grep -w apiserver.cluster.local /etc/hosts"); !strings.Contains(got, "https://apiserver.cluster.local:6443") || !strings.Contains(got, vip) {
			t.Errorf("%s does not join through the VIP:\n%s", n, got)
		}
		status := labExec(t, l, n, "sealflow", "lvscare", "status", "--vs", vip+":6443")
		for _, m := range l.Hosts[:3] {
			if !strings.Contains(status, m.Address+":6443") {
				t.Errorf("%s: lvscare does not balance over %s:\n%s", n, m.Address, status)
			}
		}
	}

	// A Deployment of 4 replicas over the workers behind a Service.
	apply(t, l, "m1", echoDeployment)
	waitUntil(t, "the echo Deployment's 4 pods Running on both workers", 3*time.Minute, func() (bool, string) {
		ps, seen := pods(l, "-n", "default", "-l", "app=echo")
		on := map[string]int{}
		for _, p := range ps {
			if running(p) {
				on[p.Spec.NodeName]++
			}
		}
		return on["n1"] == 2 && on["n2"] == 2, seen
	})
	echoIP, err := kubectl(l, "m1", "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	// The Service's endpoints follow the pods (and each kube-proxy follows
	// them) a moment after the pods run.
	waitUntil(t, "the echo Service's 4 endpoints ready", time.Minute, func() (bool, string) {
		out, err := kubectl(l, "m1", "get", "endpointslices", "-l", "kubernetes.io/service-name=echo",
			"-o", `jsonpath={range .items[*].endpoints[*]}{.targetRef.name}{" "}{.conditions.ready}{"\n"}{end}`)
		return err == nil && strings.Count(out, " true") == 4, out
	})
	// Every request is answered; at least 12, until two pods have answered
	// (balanced over 4, twelve answered by one is a chance of 1 in 4 million).
	serves := func(what string) {
		t.Helper()
		answered := map[string]bool{}
		for i := 0; i < 12 || len(answered) < 2 && i < 40; i++ {
			host := []string{"n1", "n2", "m2"}[i%3]
			got, err := httpGet(l, host, strings.TrimSpace(echoIP), 80)
			if err != nil || !strings.HasPrefix(got, "echo-") {
				t.Fatalf("%s: request %d from %s to the echo Service %s: %q %v", what, i, host, echoIP, got, err)
			}
			answered[got] = true
		}
		if len(answered) < 2 {
			t.Errorf("%s: 40 requests to the echo Service answered by %v only", what, answered)
		}
	}
	serves("all masters up")

	// kubectl on the workers through the VIP.
	admin := labExec(t, l, "m1", "cat", "/etc/kubernetes/admin.conf")
	for _, n := range []string{"n1", "n2"} {
		cmd, err := l.Command(context.Background(), n, "sh", "-c", "cat > /root/admin.conf")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = strings.NewReader(admin)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("copy admin.conf to %s: %v %s", n, err, b)
		}
	}
	viaVIP := func() (bool, string) {
		out, err := l.Exec(context.Background(), "n1", "kubectl", "--kubeconfig", "/root/admin.conf", "--server", "https://"+vip+":6443",
			"--request-timeout", "5s", "get", "nodes", "--no-headers")
		return err == nil && strings.Count(out, " Ready ") == len(l.Hosts), out
	}
	waitUntil(t, "kubectl through the VIP from n1", time.Minute, viaVIP)

	// m1's apiserver stops: the VIP, the Service and the Leases go on.
	leases := func() (map[string]string, error) {
		out, err := kubectl(l, "m2", "get", "lease", "-n", "kube-node-lease", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.spec.renewTime}{"\n"}{end}`)
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				m[f[0]] = f[1]
			}
		}
		return m, err
	}
	labExec(t, l, "m1", "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/root/kube-apiserver.yaml")
	waitUntil(t, "m1's apiserver to stop", time.Minute, func() (bool, string) {
		out, err := l.Exec(context.Background(), "n1", "sh", "-c", "exec 3<>/dev/tcp/"+m1.Address+"/6443 && echo open")
		return err != nil, out
	})
	stopped := time.Now()
	for _, n := range []string{"n1", "n2"} {
		waitUntil(t, n+"'s lvscare to take m1 out", time.Minute, func() (bool, string) {
			s := labExec(t, l, n, "sealflow", "lvscare", "status", "--vs", vip+":6443")
			return !strings.Contains(s, m1.Address+":6443") && strings.Contains(s, m2.Address+":6443"), s
		})
	}
	for i := range 10 {
		if ok, seen := viaVIP(); !ok {
			t.Fatalf("request %d through the VIP with m1's apiserver down failed:\n%s", i, seen)
		}
	}
	serves("m1's apiserver down")
	renewed, err := leases()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the workers' kubelets renewing their Leases through the VIP", 90*time.Second, func() (bool, string) {
		now, err := leases()
		return err == nil && now["n1"] > renewed["n1"] && now["n2"] > renewed["n2"], fmt.Sprintf("renewTime was %v, now %v %v", renewed, now, err)
	})
	if ns, seen := nodesOn(l, "m2"); len(ns) != len(l.Hosts) {
		t.Errorf("nodes with m1's apiserver down:\n%s", seen)
	} else {
		for _, n := range ns {
			if r, why := ready(n); !r && n.Metadata.Name != "m1" {
				t.Errorf("node %s not Ready with m1's apiserver down: %s", n.Metadata.Name, why)
			}
		}
	}
	t.Logf("m1's apiserver down for %s: the VIP, the Service and the Leases held", time.Since(stopped).Round(time.Second))
	labExec(t, l, "m1", "mv", "/root/kube-apiserver.yaml", "/etc/kubernetes/manifests/kube-apiserver.yaml")
	for _, n := range []string{"n1", "n2"} {
		labExec(t, l, n, "rm", "/root/admin.conf")
		waitUntil(t, "m1 back behind "+n+"'s VIP", 2*time.Minute, func() (bool, string) {
			s := labExec(t, l, n, "sealflow", "lvscare", "status", "--vs", vip+":6443")
			return strings.Contains(s, m1.Address+":6443"), s
		})
	}
	waitUntil(t, "m1's apiserver back", 2*time.Minute, func() (bool, string) {
		out, err := kubectl(l, "m1", "get", "--raw", "/readyz")
		return err == nil && strings.TrimSpace(out) == "ok", out + fmt.Sprint(err)
	})
	mustKubectl(t, l, "m1", "delete", "deployment,service", "echo", "--wait=true")

	// The pod network's agent kept off n2 (a taint it does not tolerate):
	// verify fails and names the check and the node.
	mustKubectl(t, l, "m1", "taint", "node", "n2", "sealflow.test/away=:NoExecute")
	waitUntil(t, "flannel gone from n2", 2*time.Minute, func() (bool, string) {
		ps, seen := pods(l, "-n", "kube-flannel")
		for _, p := range ps {
			if p.Spec.NodeName == "n2" {
				return false, seen
			}
		}
		return true, seen
	})
	t4 := time.Now()
	out, errOut := runSF(t, bin, dir, 1, append(runArgs, "--set", "verify_timeout=20s", "ha")...)
	t.Logf("run ha with flannel kept off n2, to verify failed: %s", time.Since(t4).Round(time.Second))
	// The summary's line names the check and the node (others may fail
	// too: the check pods on n2 have no pod network either).
	if !regexp.MustCompile(`FAILED    verify@m1: [0-9]+ checks? failed: .*daemonset n2: no ready pod of kube-flannel/kube-flannel-ds`).MatchString(out + errOut) {
		t.Errorf("verify with flannel kept off n2 does not name the check and the node:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(out, "FAILED    verify@m1") {
		t.Errorf("verify did not fail with flannel kept off n2:\n%s", out)
	}
	mustKubectl(t, l, "m1", "taint", "node", "n2", "sealflow.test/away=:NoExecute-")

	// Then a run changes nothing: only verify (rerunnable) runs, and passes.
	t4 = time.Now()
	verifyLog := filepath.Join(dir, ".sealflow", "logs", "verify", "m1.log")
	logged := len(readFile(t, verifyLog))
	out, _ = runSF(t, bin, dir, 0, append(runArgs, "ha")...)
	t.Logf("run ha, unchanged: %s", time.Since(t4).Round(time.Second))
	if strings.Contains(readFile(t, verifyLog)[logged:], "of an earlier verify is still being deleted") {
		t.Logf("its verify waited for the check namespace of the run before to be deleted")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "done ") && !strings.HasPrefix(line, "done      verify@m1") {
			t.Errorf("a run of an unchanged cluster did: %s\n%s", line, out)
		}
	}
	if !strings.Contains(out, "done      verify@m1") {
		t.Errorf("verify did not pass once flannel was back on n2:\n%s", out)
	}

	// add-node: a sixth host joins as a worker; verify covers it.
	n3, err := l.AddHost(context.Background(), "n3", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	before["n3"] = snapshot(t, l, "n3")
	inv, _ := os.ReadFile(l.Inventory)
	addInv := filepath.Join(dir, "add.yaml")
	write(t, addInv, strings.Replace(string(inv), "\nvars:", fmt.Sprintf("\n  new:\n    - {name: n3, address: %s, labels: {%s: /}}\nvars:", n3.Address, lab.CgroupRootLabel), 1))
	t2 := time.Now()
	out, _ = runSF(t, bin, dir, 0, append(append(append([]string{"run", "--state", "add", "-i", addInv}, common...), vars...), "add-node")...)
	if !strings.Contains(out, "done      join-nodes@n3") || !strings.Contains(out, "done      verify@m1") {
		t.Errorf("add-node:\n%s", out)
	}
	t.Logf("run add-node: %s", time.Since(t2).Round(time.Second))
	waitUntil(t, "6 nodes Ready", 2*time.Minute, func() (bool, string) { return allReady(l, 6) })

	// clean: every host as the lab made it, the machine as it was.
	t3 := time.Now()
	runSF(t, bin, dir, 0, append([]string{"run", "--state", "clean", "-i", l.Inventory}, append(common, "clean")...)...)
	t.Logf("run clean: %s", time.Since(t3).Round(time.Second))
	for _, h := range l.Hosts { // with n3
		if d := diffSnapshots(before[h.Name], snapshot(t, l, h.Name)); d != "" {
			t.Errorf("%s after clean differs from the lab's host:\n%s", h.Name, d)
		}
	}
	checkMachine(t, machineBefore)
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}

// echoDeployment is 4 replicas of the package's toolbox image, two on each
// worker, each answering HTTP with its pod's name, behind Service echo.
const echoDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: echo}}}
      containers:
      - name: echo
        image: docker.io/library/busybox:1.36.1
        imagePullPolicy: Never
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
`

// TestSeedCommandsOnLab: a cluster through the seed-style commands on the
// real node stack: init of a master and a worker, join of a second master
// (the worker's lvscare follows the new master set), clean --all.
func TestSeedCommandsOnLab(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Kubernetes cluster")
	}
	pkg := kubelab.RealPackageCopy(t)
	bin := sealflowBin(t)
	dir := t.TempDir()
	lvscareImage := packageImage(t, bin, dir, pkg, "sealflow")
	machineBefore := machineState(t)
	l := kubelab.RealStackLab(t, "seed", 1, 1)
	before := map[string]hostSnapshot{}
	for _, h := range l.Hosts {
		before[h.Name] = snapshot(t, l, h.Name)
	}
	addr := func(name string) string { h, _ := l.Host(name); return h.Address }
	conn := []string{"--output", "plain", "--known-hosts", l.KnownHosts, "--pk", l.Key}
	// What a seed command cannot read from the lab's inventory.
	sets := []string{"--set", "lvscare_image=" + lvscareImage}
	for _, v := range lab.KubeNodeVars() {
		sets = append(sets, "--set", v.Name+"="+v.Value)
	}
	// A join takes the node's own settings only: kube-proxy's and the
	// kubelet's configuration are the cluster's, made by init.
	joinSets := []string{"--set", "lvscare_image=" + lvscareImage}
	for _, v := range lab.KubeNodeVars() {
		if v.Name == "containerd_extra" {
			joinSets = append(joinSets, "--set", v.Name+"="+v.Value)
		}
	}
	seed := func(args ...string) string {
		s := sets
		if args[0] == "join" {
			s = joinSets
		}
		out, _ := runSF(t, bin, dir, 0, append(append(args, conn...), s...)...)
		return out
	}
	out := seed("init", "--master", addr("m1"), "--node", addr("n1"), "--pkg", pkg, "--version", kubeVersion)
	if !strings.Contains(out, "done      verify@") {
		t.Errorf("init did not end with a passed verify:\n%s", out)
	}
	waitUntil(t, "2 nodes Ready", 3*time.Minute, func() (bool, string) { return allReady(l, 2) })
	m2, err := l.AddHost(context.Background(), "m2", "masters")
	if err != nil {
		t.Fatal(err)
	}
	before["m2"] = snapshot(t, l, "m2")
	seed("join", "--master", m2.Address, "--pkg", pkg)
	waitUntil(t, "3 nodes Ready", 3*time.Minute, func() (bool, string) { return allReady(l, 3) })
	waitUntil(t, "n1's lvscare over 2 masters", time.Minute, func() (bool, string) {
		s := labExec(t, l, "n1", "sealflow", "lvscare", "status", "--vs", vip+":6443")
		return strings.Contains(s, m2.Address+":6443") && strings.Count(s, "->") == 2, s
	})
	if manifest := labExec(t, l, "n1", "cat", "/etc/kubernetes/manifests/kube-lvscare.yaml"); !strings.Contains(manifest, m2.Address+":6443") {
		t.Errorf("n1's lvscare manifest does not name the new master:\n%s", manifest)
	}
	runSF(t, bin, dir, 0, append([]string{"clean", "--all"}, conn...)...)
	for _, h := range l.Hosts { // with m2
		if d := diffSnapshots(before[h.Name], snapshot(t, l, h.Name)); d != "" {
			t.Errorf("%s after clean --all differs from the lab's host:\n%s", h.Name, d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".sealflow", "cluster.json")); err == nil {
		t.Error("clean --all left the cluster record")
	}
	checkMachine(t, machineBefore)
}

// packageImage is the reference of the package's image from source from
// (kubeadm, cni, refs, sealflow), as `sealflow package inspect` says.
func packageImage(t *testing.T, bin, dir, pkg, from string) string {
	t.Helper()
	var info struct {
		Images []struct{ Ref, From string }
	}
	if err := json.Unmarshal([]byte(mustSF(t, bin, dir, "package", "inspect", "--json", pkg)), &info); err != nil {
		t.Fatal(err)
	}
	for _, im := range info.Images {
		if im.From == from {
			return im.Ref
		}
	}
	t.Fatalf("the package has no image from %s: %+v", from, info.Images)
	return ""
}

// checkMachine fails the test if a machine-wide setting changed.
func checkMachine(t *testing.T, before map[string]string) {
	t.Helper()
	after := machineState(t)
	var changed []string
	for k, v := range before {
		if after[k] != v {
			changed = append(changed, fmt.Sprintf("%s: %s, before %s", k, after[k], v))
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("the machine changed:\n%s", strings.Join(changed, "\n"))
	}
}
