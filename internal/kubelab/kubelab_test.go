package kubelab

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/testutil"
)

const (
	criSocket = "unix:///var/run/containerd/containerd.sock"
	endpoint  = "apiserver.cluster.local"
	admin     = "--kubeconfig=/etc/kubernetes/admin.conf"
	cacheDir  = "--cache-dir=/tmp/kubectl-cache" // kubectl's discovery cache: not in the host's /root
)

// TestControlPlaneInLab brings up a real control plane in lab hosts by hand
// (no sealflow plan): the package's init.sh on every host, kubeadm init on
// m1, a control-plane join of m2 (a second etcd member), a worker join of
// n1 through the TLS bootstrap, three Ready nodes; then kubeadm reset and
// clean.sh leave the hosts as the lab made them.
func TestControlPlaneInLab(t *testing.T) {
	pkg := ForTest(t)
	l := lab.ForTest(t, lab.Config{Name: "kube", Masters: 2, Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	hosts := []string{"m1", "m2", "n1"}
	addr := map[string]string{}
	for _, h := range hosts {
		hh, ok := l.Host(h)
		if !ok {
			t.Fatalf("lab has no host %s", h)
		}
		addr[h] = hh.Address
	}
	before := map[string][]string{}
	for _, h := range hosts {
		before[h] = upperFiles(t, l, h)
	}
	sh := func(h, script string) (string, error) { return l.Exec(ctx, h, "bash", "-c", script) }
	must := func(h, script string) string {
		t.Helper()
		out, err := sh(h, script)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	onAll := func(what string, script func(h string) string) {
		t.Helper()
		var g errgroup.Group
		for _, h := range hosts {
			g.Go(func() error {
				out, err := sh(h, script(h))
				if err != nil {
					return fmt.Errorf("%s on %s: %w", what, h, err)
				}
				t.Logf("%s on %s:\n%s", what, h, strings.TrimSpace(out))
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	// The package, as a plan would distribute it: unpacked and initialised on every host.
	start := time.Now()
	onAll("untar", func(string) string { return "tar -C /root -xzf " + quote(pkg) })
	t.Logf("unpacked the package on 3 hosts in %s", time.Since(start).Round(time.Millisecond))
	onAll("init.sh", func(string) string { return "cd /root/kube/shell && bash init.sh" })
	onAll("init.sh again", func(string) string { return "cd /root/kube/shell && bash init.sh" })
	onAll("hosts", func(string) string {
		return fmt.Sprintf("printf '%%s\\t%%s\\n' %s %s >> /etc/hosts", addr["m1"], endpoint)
	})
	out := must("m1", "systemctl is-active kubelet; systemctl is-enabled kubelet; command -v systemctl")
	if got := strings.Fields(out); !cmp.Equal(got, []string{"inactive", "enabled", "/usr/local/bin/systemctl"}) {
		t.Errorf("after init.sh: kubelet service %q, want inactive, enabled, shim at /usr/local/bin/systemctl", got)
	}

	// kubeadm init on m1.
	token := randomToken(t)
	certKey := randomHex(t, 32)
	cfg := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: %s
  ttl: 1h0m0s
certificateKey: %s
localAPIEndpoint:
  advertiseAddress: %s
  bindPort: 6443
nodeRegistration:
  name: m1
  criSocket: %s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.4
controlPlaneEndpoint: %s:6443
networking:
  serviceSubnet: 10.96.0.0/22
  podSubnet: 100.64.0.0/10
`, token, certKey, addr["m1"], criSocket, endpoint)
	// kubeadm prints the join commands with the token and certificate key: never logged.
	hide := strings.NewReplacer(token, "<token>", certKey, "<certificate-key>")
	writeFile(ctx, t, l, "m1", "/root/kubeadm.yaml", cfg)
	start = time.Now()
	out, err := sh("m1", "kubeadm init --skip-phases=preflight --upload-certs --config /root/kubeadm.yaml 2>&1")
	if err != nil {
		t.Fatalf("kubeadm init: %s\nkubelet log:\n%s", hide.Replace(err.Error()), kubeletLog(ctx, l, "m1"))
	}
	initTime := time.Since(start)
	t.Logf("kubeadm init on m1 took %s:\n%s", initTime.Round(time.Millisecond), hide.Replace(lastLines(out, 25)))
	waitReady(ctx, t, l, []string{"m1"})
	t.Logf("FIGURE control plane Ready %s after kubeadm init started", time.Since(start).Round(time.Millisecond))
	mem := hostRSS(ctx, t, l, "m1")
	t.Logf("FIGURE memory on m1 with one master: %s", mem)

	// The hash kubeadm join checks the cluster CA against.
	caHash := caCertHash(t, must("m1", "cat /etc/kubernetes/pki/ca.crt"))
	joinCfg := func(h string, controlPlane bool) string {
		c := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %s:6443
    token: %s
    caCertHashes: [%s]
nodeRegistration:
  name: %s
  criSocket: %s
`, endpoint, token, caHash, h, criSocket)
		if controlPlane {
			c += fmt.Sprintf("controlPlane:\n  certificateKey: %s\n  localAPIEndpoint:\n    advertiseAddress: %s\n    bindPort: 6443\n", certKey, addr[h])
		}
		return c
	}
	const join = "kubeadm join --skip-phases=preflight --config /root/kubeadm.yaml 2>&1"

	// Control-plane join of m2: a second etcd member.
	start = time.Now()
	writeFile(ctx, t, l, "m2", "/root/kubeadm.yaml", joinCfg("m2", true))
	out, err = sh("m2", join)
	if err != nil {
		t.Fatalf("control-plane join of m2: %s\nkubelet log:\n%s", hide.Replace(err.Error()), kubeletLog(ctx, l, "m2"))
	}
	t.Logf("FIGURE control-plane join of m2 took %s:\n%s", time.Since(start).Round(time.Millisecond), hide.Replace(lastLines(out, 12)))
	members := waitFor(ctx, t, "2 started etcd members", func() (string, bool) {
		out, err := sh("m1", "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "+
			"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key --command-timeout=5s member list")
		return out, err == nil && strings.Count(out, ", started, ") == 2 &&
			strings.Contains(out, ", m1, https://"+addr["m1"]+":2380") && strings.Contains(out, ", m2, https://"+addr["m2"]+":2380")
	})
	t.Logf("etcd members:\n%s", members)

	// Worker join of n1 through the TLS bootstrap.
	start = time.Now()
	writeFile(ctx, t, l, "n1", "/root/kubeadm.yaml", joinCfg("n1", false))
	out, err = sh("n1", join)
	if err != nil {
		t.Fatalf("worker join of n1: %s\nkubelet log:\n%s", hide.Replace(err.Error()), kubeletLog(ctx, l, "n1"))
	}
	t.Logf("FIGURE worker join of n1 took %s:\n%s", time.Since(start).Round(time.Millisecond), hide.Replace(lastLines(out, 8)))
	pemOut := must("n1", "readlink /var/lib/kubelet/pki/kubelet-client-current.pem && grep -c 'client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem' /etc/kubernetes/kubelet.conf")
	if !strings.Contains(pemOut, "kubelet-client-") {
		t.Errorf("n1 kubelet client certificate: %q", pemOut)
	}
	csrs := must("m1", "kubectl "+admin+" "+cacheDir+" get csr -o jsonpath='{range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].type}{\"\\n\"}{end}'")
	if !strings.Contains(csrs, "kubernetes.io/kube-apiserver-client-kubelet system:bootstrap:"+strings.Split(token, ".")[0]+" Approved") {
		t.Errorf("no approved kubelet CSR from the bootstrap token:\n%s", csrs)
	}
	waitReady(ctx, t, l, hosts)
	t.Logf("nodes:\n%s", must("m1", "kubectl "+admin+" "+cacheDir+" get nodes -o wide"))
	waitFor(ctx, t, "a Lease of each node, owned by its Node", func() (string, bool) {
		out, err := sh("m1", "kubectl "+admin+" "+cacheDir+" get lease -n kube-node-lease -o jsonpath='{range .items[*]}{.spec.holderIdentity} {.metadata.ownerReferences[0].kind}{\"\\n\"}{end}'")
		return out, err == nil && out == "m1 Node\nm2 Node\nn1 Node\n"
	})
	pods := waitFor(ctx, t, "the control plane's mirror pods Running", func() (string, bool) {
		out, err := sh("m1", "kubectl "+admin+" "+cacheDir+" get pods -n kube-system -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName}{\"\\n\"}{end}'")
		if err != nil {
			return out, false
		}
		for _, h := range []string{"m1", "m2"} {
			for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
				if !strings.Contains(out, c+"-"+h+" Running "+h+"\n") {
					return out, false
				}
			}
		}
		return out, true
	})
	t.Logf("kube-system pods:\n%s", pods)
	for _, h := range []string{"m1", "m2"} {
		t.Logf("FIGURE memory on %s (master, 2 masters + 1 node): %s", h, hostRSS(ctx, t, l, h))
	}

	// The kubelet restarts (kubeadm and the shim do it) without restarting
	// the static pods: their processes are found again.
	pidsBefore := must("m2", "cat /var/lib/kubelet/standin/*.json | sort")
	must("m2", "systemctl restart kubelet")
	waitFor(ctx, t, "the restarted kubelet's healthz", func() (string, bool) {
		out, err := sh("m2", "exec 3<>/dev/tcp/127.0.0.1/10248 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3")
		return out, err == nil && strings.HasSuffix(strings.TrimSpace(out), "ok")
	})
	if after := must("m2", "cat /var/lib/kubelet/standin/*.json | sort"); after != pidsBefore {
		t.Errorf("static pod processes changed across a kubelet restart:\nbefore %s\nafter  %s", pidsBefore, after)
	}

	// kubeadm reset and clean.sh leave the hosts as the lab made them.
	for _, h := range []string{"n1", "m2", "m1"} {
		out, err := sh(h, "kubeadm reset -f --cri-socket "+criSocket+" 2>&1")
		if err != nil {
			t.Fatalf("kubeadm reset on %s: %v", h, err)
		}
		t.Logf("kubeadm reset on %s:\n%s", h, lastLines(out, 6))
	}
	onAll("clean.sh", func(string) string {
		return "bash /root/kube/shell/clean.sh && bash /root/kube/shell/clean.sh >/dev/null"
	})
	onAll("restore", func(string) string {
		return "rm -rf /root/kube /root/kubeadm.yaml && sed -i '/\\s" + endpoint + "$/d' /etc/hosts"
	})
	for _, h := range hosts {
		out := must(h, "ps -eo comm=")
		for _, c := range strings.Fields(out) {
			switch c {
			case "kube-apiserver", "kube-controller", "kube-scheduler", "etcd", "kubelet", "sealflow-svc":
				t.Errorf("%s: %s still runs after kubeadm reset and clean.sh", h, c)
			}
		}
		out, _ = sh(h, "command -v kubeadm kubelet systemctl")
		if strings.Contains(out, "/usr/bin/kube") || strings.Contains(out, "/usr/local/bin/systemctl") {
			t.Errorf("%s: the package's commands are still installed after clean.sh: %s", h, out)
		}
	}
	for _, h := range hosts {
		after := upperFiles(t, l, h)
		if d := cmp.Diff(before[h], after); d != "" {
			t.Errorf("%s: files in the overlay upper dirs differ from before init.sh (-before +after):\n%s", h, d)
		}
	}
}

// writeFile writes content to path on host through stdin: the secrets in
// kubeadm's configuration are on no command line.
func writeFile(ctx context.Context, t *testing.T, l *lab.Lab, host, path, content string) {
	t.Helper()
	cmd, err := l.Command(ctx, host, "sh", "-c", "umask 077 && cat > "+quote(path))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write %s on %s: %v\n%s", path, host, err, out)
	}
}

// upperFiles lists what a host wrote to its overlay upper dirs: every
// entry with its type, except directories copied up from the machine (an
// overlay keeps those once a file was written in them) and files that are
// as the machine's (a file put back as it was).
func upperFiles(t *testing.T, l *lab.Lab, host string) []string {
	t.Helper()
	var out []string
	for _, up := range l.UpperDirs(host) {
		_, d, _ := strings.Cut(filepath.ToSlash(up), "/upper/")
		err := filepath.WalkDir(up, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == up {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(up, p)
			if rel == "." {
				return nil
			}
			if d != "root" && d != "home" && sameAsLower(p, filepath.Join("/", d, rel)) {
				return nil // copied up from the machine, or put back as it was there
			}
			kind := "file"
			switch m := e.Type(); {
			case m.IsDir():
				kind = "dir"
			case m&fs.ModeSymlink != 0:
				kind = "symlink"
			case m&fs.ModeCharDevice != 0:
				kind = "whiteout"
			}
			out = append(out, "/"+filepath.Join(d, rel)+" ("+kind+")")
			return nil
		})
		if err != nil {
			t.Fatalf("list %s: %v", up, err)
		}
	}
	sort.Strings(out)
	return out
}

// sameAsLower reports whether the upper entry looks as the machine's lower
// one: both directories, symlinks to the same target, or regular files with
// the same mode and content.
func sameAsLower(upper, lower string) bool {
	u, err1 := os.Lstat(upper)
	l, err2 := os.Lstat(lower)
	if err1 != nil || err2 != nil || u.Mode() != l.Mode() {
		return false
	}
	switch {
	case u.IsDir():
		return true
	case u.Mode()&fs.ModeSymlink != 0:
		a, err1 := os.Readlink(upper)
		b, err2 := os.Readlink(lower)
		return err1 == nil && err2 == nil && a == b
	case u.Mode().IsRegular():
		a, err1 := os.ReadFile(upper)
		b, err2 := os.ReadFile(lower)
		return err1 == nil && err2 == nil && bytes.Equal(a, b)
	}
	return false
}

// waitReady waits until kubectl shows every node of names Ready.
func waitReady(ctx context.Context, t *testing.T, l *lab.Lab, names []string) {
	t.Helper()
	waitFor(ctx, t, strings.Join(names, ", ")+" Ready", func() (string, bool) {
		out, err := l.Exec(ctx, "m1", "kubectl", admin, cacheDir, "get", "nodes", "-o",
			`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			return out, false
		}
		for _, n := range names {
			if !strings.Contains(out, n+"=True\n") {
				return out, false
			}
		}
		return out, true
	})
}

// waitFor polls check every second for up to 4 minutes (a bound, not a
// timing assertion), or until ctx's deadline; it returns check's last
// output.
func waitFor(ctx context.Context, t *testing.T, what string, check func() (string, bool)) string {
	t.Helper()
	limit := 4 * time.Minute
	if d, ok := ctx.Deadline(); ok && time.Until(d) < limit {
		limit = time.Until(d)
	}
	var out string
	testutil.Eventually(t, what, limit, time.Second, func() error {
		var ok bool
		if out, ok = check(); !ok {
			return fmt.Errorf("last answer:\n%s", out)
		}
		return nil
	})
	return out
}

// hostRSS sums the resident memory of a host's processes.
func hostRSS(ctx context.Context, t *testing.T, l *lab.Lab, host string) string {
	t.Helper()
	out, err := l.Exec(ctx, host, "ps", "-eo", "rss=,comm=")
	if err != nil {
		t.Fatal(err)
	}
	var total int
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.Atoi(f[0])
		total += kb
		if kb > 20<<10 {
			parts = append(parts, fmt.Sprintf("%s %d MiB", f[1], kb>>10))
		}
	}
	return fmt.Sprintf("%d MiB (%s)", total>>10, strings.Join(parts, ", "))
}

func kubeletLog(ctx context.Context, l *lab.Lab, host string) string {
	out, _ := l.Exec(ctx, host, "tail", "-n", "40", "/var/log/kubelet.log")
	return out
}

// caCertHash is kubeadm's --discovery-token-ca-cert-hash of a CA.
func caCertHash(t *testing.T, caPEM string) string {
	t.Helper()
	blk, _ := pem.Decode([]byte(caPEM))
	if blk == nil {
		t.Fatalf("ca.crt is not PEM: %q", caPEM)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// randomToken is a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}.
func randomToken(t *testing.T) string {
	t.Helper()
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 22)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b[:6]) + "." + string(b[6:])
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string { return tail(s, n) }

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
