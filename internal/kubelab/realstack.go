package kubelab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
)

// The real node stack: the package `sealflow package build` makes (real
// kubelet, containerd, runc, CNI plugins, images, flannel), on lab hosts
// with systemd as PID 1 (lab.Config.Systemd and its NodeStack).

// RealPackageCopy is RealForTest's package, copied into the test's
// temporary directory: package.sh run from another checkout may replace
// the cached one while the test runs.
func RealPackageCopy(t testing.TB) string {
	t.Helper()
	path := RealForTest(t)
	own := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := copyFile(path, own); err != nil {
		t.Fatalf("copy the package: %v", err)
	}
	return own
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
		"/usr/lib/systemd/system/docker.socket", "/etc/systemd/system/multi-user.target.wants/containerd.service",
	}
}

// RealStackLab starts a lab whose hosts can run the real node stack:
// systemd as PID 1 (and NodeStack); the machine's own container runtime
// hidden (machineRuntime: removed from the host's overlays, the machine
// keeps it); a default route on the lab's link (a lab host has none:
// without a route a connection to a ClusterIP fails before kube-proxy's
// DNAT, and flannel picks its interface from the default route; no
// gateway, so nothing leaves the lab's bridge); each
// host's resolver its own address (CoreDNS refuses a
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
		script := fmt.Sprintf("systemctl is-system-running --wait >/dev/null; rm -f %s && systemctl daemon-reload && "+
			"mkdir -p /lib/modules && ip route add default dev eth0 && echo 'nameserver %s' > /etc/resolv.conf",
			strings.Join(machineRuntime(), " "), h.Address)
		if out, err := l.Exec(ctx, h.Name, "sh", "-c", script); err != nil {
			t.Fatalf("%s: resolver: %v\n%s", h.Name, err, out)
		}
	}
	return l
}
