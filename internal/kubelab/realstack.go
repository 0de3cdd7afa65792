package kubelab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
)

// The real node stack: the package `sealflow package build` makes (real
// kubelet, containerd, runc, CNI plugins, images, flannel), on lab hosts
// with systemd as PID 1 (lab.Config.Systemd and its NodeStack).

// packageScript builds the real package through the lab's mirror of the
// upstream release files and images.
const packageScript = "testdata/kube/package.sh"

// RealPackage builds the real offline package if needed (cached: seconds
// when nothing changed; about 2 minutes when sealflow changed, as its
// image is in the package) and returns the tarball's path. It skips the
// test only when it cannot build here (not root).
func RealPackage(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes package is built into /var/cache/sealflow: run as root")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	start := time.Now()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, packageScript))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("build the real Kubernetes package (bash %s): %v\n%s", packageScript, err, tail(stderr.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("build the real Kubernetes package: %s printed %q, not a package", packageScript, path)
	}
	t.Logf("real Kubernetes package %s (ready in %s)", path, time.Since(start).Round(time.Millisecond))
	return path
}

// RealStackVars are the `--set` values plans/ha.yaml needs on lab hosts,
// and only there: each says what of the machine it works around. None is
// a default of the product.
func RealStackVars() []string {
	return []string{
		// The kernel has no IPVS.
		"proxy_mode=nftables",
		// The machine's cgroups are v1 (kubelet v1.34 refuses them unless told).
		"kubelet_config={failCgroupV1: false}",
		// nf_conntrack_max cannot be set from a network namespace, and
		// kube-proxy would then write nf_conntrack's hashsize, which is
		// the machine's: leave both as they are.
		"proxy_config={conntrack: {maxPerCore: 0}}",
		// No CAP_SYS_RESOURCE here: runc cannot lower an oom_score_adj.
		"containerd_extra=[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true\n",
	}
}

// machineRuntime is what of a container runtime the machine has installed
// (Debian's containerd for internal/lab's tests, a docker client), seen in
// a lab host through its /usr overlay. init.sh rightly refuses a host with
// another runtime: a lab host is a fresh machine without them.
func machineRuntime() []string {
	return []string{
		"/usr/local/bin/docker", "/usr/bin/docker", "/usr/bin/dockerd",
		"/usr/bin/containerd", "/usr/bin/containerd-shim", "/usr/bin/containerd-shim-runc-v1",
		"/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr",
		"/usr/lib/systemd/system/containerd.service", "/usr/lib/systemd/system/docker.service",
		"/usr/lib/systemd/system/docker.socket",
	}
}

// RealStackLab starts a lab whose hosts can run the real node stack:
// systemd as PID 1 (and NodeStack); the machine's own container runtime
// hidden (machineRuntime: removed from the host's overlays, the machine
// keeps it); each host's resolver its own address (CoreDNS refuses a
// loopback upstream, its loop check; nothing answers DNS there, so no name
// leaves the lab).
func RealStackLab(t testing.TB, name string, masters, nodes int) *lab.Lab {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skipf("no systemd here (%v): apt-get install systemd", err)
	}
	l := lab.ForTest(t, lab.Config{Name: name, Masters: masters, Nodes: nodes, Systemd: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, h := range l.Hosts {
		script := fmt.Sprintf("systemctl is-system-running --wait >/dev/null; rm -f %s && systemctl daemon-reload && echo 'nameserver %s' > /etc/resolv.conf",
			strings.Join(machineRuntime(), " "), h.Address)
		if out, err := l.Exec(ctx, h.Name, "sh", "-c", script); err != nil {
			t.Fatalf("%s: resolver: %v\n%s", h.Name, err, out)
		}
	}
	return l
}
