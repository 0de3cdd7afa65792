package lab

import "strings"

// A KubeNode host (Config.KubeNode) is what a user's fresh machine is to
// plans/ha.yaml: no container runtime installed, a default route, a
// resolver that is not loopback.

// KubeVar is one plan var the lab sets in its inventory.
type KubeVar struct{ Name, Value string }

// KubeNodeVars are the plans/ha.yaml vars a KubeNode lab needs, and only
// a lab: each says what of this machine it works around. None is a
// default of the product.
func KubeNodeVars() []KubeVar {
	return []KubeVar{
		// The kernel has no IPVS.
		{"proxy_mode", "nftables"},
		// The machine's cgroups are v1 (kubelet v1.34 refuses them unless told).
		{"kubelet_config", "{failCgroupV1: false}"},
		// nf_conntrack_max cannot be set from a network namespace, and
		// kube-proxy would then write nf_conntrack's hashsize, which is the
		// machine's: leave both as they are.
		{"proxy_config", "{conntrack: {maxPerCore: 0}}"},
		// No CAP_SYS_RESOURCE here: runc cannot lower an oom_score_adj.
		{"containerd_extra", "[plugins.'io.containerd.cri.v1.runtime']\n  restrict_oom_score_adj = true\n"},
	}
}

// machineRuntime is what of a container runtime the machine has installed
// (Debian's containerd for this package's tests, a docker client), seen in
// a host through its overlays. The package's init.sh rightly refuses a
// host with another runtime.
func machineRuntime() []string {
	return []string{
		"/usr/local/bin/docker", "/usr/bin/docker", "/usr/bin/dockerd",
		"/usr/bin/containerd", "/usr/bin/containerd-shim", "/usr/bin/containerd-shim-runc-v1",
		"/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr",
		"/usr/lib/systemd/system/containerd.service", "/usr/lib/systemd/system/docker.service",
		"/usr/lib/systemd/system/docker.socket", "/etc/systemd/system/multi-user.target.wants/containerd.service",
	}
}

// kubeNodeScript is the part of a KubeNode host's init that makes it a
// fresh machine: the machine's runtime removed from the host's overlays
// (the machine keeps it); a default route on the lab's link (without one a
// connection to a ClusterIP fails before kube-proxy's DNAT, and flannel
// picks its interface from the default route; no gateway, so nothing
// leaves the lab's bridge); the host's own address as resolver (CoreDNS
// refuses a loopback upstream, its loop check; nothing answers DNS there,
// so no name leaves the lab); /lib/modules, which kubeadm's preflight
// reads.
func kubeNodeScript(w func(format string, args ...any), address string) {
	var q []string
	for _, f := range machineRuntime() {
		q = append(q, quote(f))
	}
	w("rm -f %s", strings.Join(q, " "))
	w("ip route add default dev eth0")
	w("echo %s > /etc/resolv.conf", quote("nameserver "+address))
	w("mkdir -p /lib/modules")
}
