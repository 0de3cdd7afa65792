package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/kubelab"
	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/testutil"
)

const (
	kubeVersion = "v1.34.4"
	vip         = "10.255.255.253"
)

// hostSnapshot is what a lab host looks like from outside: the files it
// wrote (its overlay upper dirs), its routes, addresses, kernel rules and
// processes.
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

func readyNodes(l *lab.Lab, master string) (int, string) {
	out, err := l.Exec(context.Background(), master, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get", "nodes", "--no-headers")
	if err != nil {
		return 0, out + err.Error()
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "Ready" {
			n++
		}
	}
	return n, out
}

// TestHAClusterOnLab builds a highly available cluster with plans/ha.yaml
// on 3 masters + 2 workers from the lab's offline package (real kubeadm,
// apiserver, controller-manager, scheduler and etcd; a stand-in kubelet),
// with a failure at the second master's join and a resume; checks the
// cluster, the VIP, failover, a second run, add-node and clean.
func TestHAClusterOnLab(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Kubernetes cluster")
	}
	pkg := kubelab.ForTest(t)
	l := lab.ForTest(t, lab.Config{Name: "ha", Masters: 3, Nodes: 2})
	bin := sealflowBin(t)
	dir := t.TempDir()
	before := map[string]hostSnapshot{}
	for _, h := range l.Hosts {
		before[h.Name] = snapshot(t, l, h.Name)
	}
	common := []string{"--output", "plain", "--known-hosts", l.KnownHosts}
	vars := []string{"--set", "pkg=" + pkg, "--set", "version=" + kubeVersion, "--set", "skip_phases=preflight", "--set", "verify=false"}

	// A failure injected at the second master's join: a kubeadm that fails
	// first on m2's PATH.
	labExec(t, l, "m2", "sh", "-c", `printf '#!/bin/sh\necho "injected failure" >&2\nexit 1\n' > /usr/local/bin/kubeadm && chmod +x /usr/local/bin/kubeadm`)
	// The stand-in package has no pod network manifest.
	runArgs := append(append([]string{"run", "-i", l.Inventory}, common...), append(vars, "--set", "cni_manifest=")...)
	out, errOut, code := sf(t, bin, dir, "", append(runArgs, "ha")...)
	if code != 1 || !strings.Contains(out, "FAILED    join-masters@m2") {
		t.Fatalf("with a failing join on m2: exit %d, want 1 and join-masters@m2 failed\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out, "start     join-masters@m3") || strings.Contains(out, "start     join-nodes@") {
		t.Errorf("work that needs m2's join started after it failed:\n%s", out)
	}
	labExec(t, l, "m2", "rm", "/usr/local/bin/kubeadm")
	out = mustSF(t, bin, dir, append([]string{"resume"}, common...)...)
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

	// The cluster: 5 nodes Ready, 3 etcd members.
	waitUntil(t, "5 nodes Ready", 3*time.Minute, func() (bool, string) {
		n, seen := readyNodes(l, "m1")
		return n == 5, seen
	})
	members := labExec(t, l, "m1", "etcdctl", "--endpoints=https://127.0.0.1:2379",
		"--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
		"--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "member", "list")
	if n := strings.Count(strings.TrimSpace(members), "\n") + 1; n != 3 {
		t.Errorf("etcd has %d members, want 3:\n%s", n, members)
	}

	// Workers reach the masters through the VIP, balanced over all three.
	admin := labExec(t, l, "m1", "cat", "/etc/kubernetes/admin.conf")
	for _, n := range []string{"n1", "n2"} {
		if got := labExec(t, l, n, "sh", "-c", "grep -h 'server:' /etc/kubernetes/kubelet.conf; grep -w apiserver.cluster.local /etc/hosts"); !strings.Contains(got, "https://apiserver.cluster.local:6443") || !strings.Contains(got, vip) {
			t.Errorf("%s does not join through the VIP:\n%s", n, got)
		}
		status := labExec(t, l, n, "sealflow", "lvscare", "status", "--vs", vip+":6443")
		for _, m := range l.Hosts[:3] {
			if !strings.Contains(status, m.Address+":6443") {
				t.Errorf("%s: lvscare does not balance over %s:\n%s", n, m.Address, status)
			}
		}
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
			"--request-timeout", "3s", "get", "nodes", "--no-headers")
		return err == nil && strings.Count(out, " Ready") == 5, out
	}
	waitUntil(t, "kubectl through the VIP from n1", time.Minute, viaVIP)

	// One master's apiserver stops: the cluster still answers through the VIP.
	labExec(t, l, "m1", "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/root/kube-apiserver.yaml")
	waitUntil(t, "m1's apiserver to stop", time.Minute, func() (bool, string) {
		out, err := l.Exec(context.Background(), "n1", "sh", "-c", "exec 3<>/dev/tcp/"+l.Hosts[0].Address+"/6443 && echo open")
		return err != nil, out
	})
	waitUntil(t, "lvscare to take m1 out", time.Minute, func() (bool, string) {
		s := labExec(t, l, "n1", "sealflow", "lvscare", "status", "--vs", vip+":6443")
		return !strings.Contains(s, l.Hosts[0].Address+":6443"), s
	})
	for i := 0; i < 10; i++ {
		if ok, seen := viaVIP(); !ok {
			t.Fatalf("request %d through the VIP with m1's apiserver down failed:\n%s", i, seen)
		}
	}
	labExec(t, l, "m1", "mv", "/root/kube-apiserver.yaml", "/etc/kubernetes/manifests/kube-apiserver.yaml")
	for _, n := range []string{"n1", "n2"} {
		labExec(t, l, n, "rm", "/root/admin.conf")
	}
	waitUntil(t, "m1 back behind the VIP", 2*time.Minute, func() (bool, string) {
		s := labExec(t, l, "n1", "sealflow", "lvscare", "status", "--vs", vip+":6443")
		return strings.Contains(s, l.Hosts[0].Address+":6443"), s
	})

	// A second run changes nothing.
	out = mustSF(t, bin, dir, append(runArgs, "ha")...)
	if !strings.Contains(out, "29 unchanged, 7 skipped\n") {
		t.Errorf("second run:\n%s", out)
	}

	// add-node: a sixth host joins as a worker.
	n3, err := l.AddHost(context.Background(), "n3", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	before["n3"] = snapshot(t, l, "n3")
	inv, _ := os.ReadFile(l.Inventory)
	addInv := filepath.Join(dir, "add.yaml")
	write(t, addInv, string(inv)+fmt.Sprintf("  new:\n    - {name: n3, address: %s}\n", n3.Address))
	mustSF(t, bin, dir, append(append(append([]string{"run", "--state", "add", "-i", addInv}, common...), vars...), "add-node")...)
	waitUntil(t, "6 nodes Ready", 2*time.Minute, func() (bool, string) {
		n, seen := readyNodes(l, "m1")
		return n == 6, seen
	})

	// clean: every host as the lab made it.
	mustSF(t, bin, dir, append([]string{"run", "--state", "clean", "-i", l.Inventory}, append(common, "clean")...)...)
	for _, h := range l.Hosts { // with n3
		if d := diffSnapshots(before[h.Name], snapshot(t, l, h.Name)); d != "" {
			t.Errorf("%s after clean differs from the lab's host:\n%s", h.Name, d)
		}
	}
}

// TestSeedCommandsOnLab: the same through the seed-style commands.
func TestSeedCommandsOnLab(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Kubernetes cluster")
	}
	pkg := kubelab.ForTest(t)
	l := lab.ForTest(t, lab.Config{Name: "seed", Masters: 2, Nodes: 1})
	bin := sealflowBin(t)
	dir := t.TempDir()
	before := map[string]hostSnapshot{}
	for _, h := range l.Hosts {
		before[h.Name] = snapshot(t, l, h.Name)
	}
	addr := func(name string) string { h, _ := l.Host(name); return h.Address }
	common := []string{"--output", "plain", "--known-hosts", l.KnownHosts, "--pk", l.Key, "--set", "skip_phases=preflight", "--set", "verify=false"}
	mustSF(t, bin, dir, append([]string{"init", "--master", addr("m1") + "-" + strings.Split(addr("m2"), ".")[3],
		"--node", addr("n1"), "--pkg", pkg, "--version", kubeVersion, "--set", "cni_manifest="}, common...)...)
	waitUntil(t, "3 nodes Ready", 3*time.Minute, func() (bool, string) {
		n, seen := readyNodes(l, "m1")
		return n == 3, seen
	})
	n2, err := l.AddHost(context.Background(), "n2", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	before["n2"] = snapshot(t, l, "n2")
	m3, err := l.AddHost(context.Background(), "m3", "masters")
	if err != nil {
		t.Fatal(err)
	}
	before["m3"] = snapshot(t, l, "m3")
	// A master and a node join; the existing worker's lvscare follows the
	// new master set.
	mustSF(t, bin, dir, append([]string{"join", "--master", m3.Address, "--node", n2.Address, "--pkg", pkg}, common...)...)
	waitUntil(t, "5 nodes Ready", 2*time.Minute, func() (bool, string) {
		n, seen := readyNodes(l, "m1")
		return n == 5, seen
	})
	for _, n := range []string{"n1", "n2"} {
		waitUntil(t, n+"'s lvscare over 3 masters", time.Minute, func() (bool, string) {
			s := labExec(t, l, n, "sealflow", "lvscare", "status", "--vs", vip+":6443")
			return strings.Contains(s, m3.Address+":6443") && strings.Count(s, "->") == 3, s
		})
		manifest := labExec(t, l, n, "cat", "/etc/kubernetes/manifests/kube-lvscare.yaml")
		if !strings.Contains(manifest, m3.Address+":6443") {
			t.Errorf("%s's lvscare manifest does not name the new master:\n%s", n, manifest)
		}
	}
	mustSF(t, bin, dir, append([]string{"clean", "--all"}, common[:len(common)-4]...)...)
	for _, h := range l.Hosts { // with n2 and m3
		if d := diffSnapshots(before[h.Name], snapshot(t, l, h.Name)); d != "" {
			t.Errorf("%s after clean --all differs from the lab's host:\n%s", h.Name, d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".sealflow", "cluster.json")); err == nil {
		t.Error("clean --all left the cluster record")
	}
}
