// Package lab builds test hosts on one Linux machine: each host is a set of
// network, mount, PID and UTS namespaces with its own hostname; private
// /etc, /usr, /var/lib, /var/log, /opt (overlays over the machine's dirs);
// a fresh /root and /home; its own /tmp and /run; and a real OpenSSH server
// listening on the host's address. The hosts hang off a bridge in the
// machine's network namespace, so the machine reaches them over ssh as it
// would reach real machines.
//
// A host shares the rest of the machine's file system (/var/tmp, /srv,
// /dev, ...; the lab's Dir is visible in it) and has no default route:
// it reaches the other hosts of its lab and the machine (the gateway, .1),
// nothing else. Its resolver is 127.0.0.1, so no name leaves the host.
//
// With Config.NodeStack a host can run containerd, runc and the kubelet
// without touching the machine (its own cgroups and cgroup namespace,
// real-disk dirs for the runtime, its own /dev, read-only machine-wide
// sysctls: see nodestack.go); with Config.Systemd its PID 1 is systemd.
//
// A lab is described by a state file in /run/sealflow-lab; Open, Down and
// Lab.Exec work from it even after the process that ran Up is gone.
package lab

import (
	"fmt"
	"path/filepath"
	"sync"
)

// Config says what lab to build.
type Config struct {
	// Name names the lab: lower-case letters, digits and '-', at most 32.
	Name string
	// Masters and Nodes are the number of hosts in the groups "masters"
	// (m1, m2, ...) and "nodes" (n1, n2, ...).
	Masters, Nodes int
	// Subnet is the lab's IPv4 network (CIDR, prefix /8 to /24). Empty
	// picks a free /24 in 10.250.0.0/16.
	Subnet string
	// Dir holds the lab's files (keys, inventory, the hosts' layers).
	// Empty means /var/tmp/sealflow-lab/NAME.
	Dir string
	// User, when set, is created on every host: a non-root user whose
	// sudo asks for the lab's password.
	User string
	// Password enables password authentication (root and User) with a
	// generated password.
	Password bool
	// NodeStack gives every host what containerd, runc and the kubelet
	// need, kept off the machine (see nodestack.go): its own cgroup
	// subtrees and cgroup namespace, real-disk /var/lib/containerd,
	// /var/lib/kubelet and /var/log, its own /dev, machine id and product
	// uuid, read-only machine-wide sysctls and a shared-propagation root.
	NodeStack bool
	// Systemd runs systemd as every host's PID 1 (after the lab's own
	// init has made the host; it implies NodeStack): the lab's sshd is a
	// unit, `systemctl start` works. Units that would change the machine
	// are masked (nodestack.go).
	Systemd bool
	// KubeNode makes every host a fresh machine for a Kubernetes node
	// (kubenode.go; it implies Systemd): the machine's own container
	// runtime hidden, a default route on the lab's link, its own address
	// as resolver, and the inventory's vars set to what this kernel and
	// machine need of plans/ha.yaml (KubeNodeVars).
	KubeNode bool
	// Rate, a tc rate such as "100mbit", shapes every host's link (and the
	// control namespace's) to that rate each way: a token bucket on both
	// ends of its veth. Empty leaves the links unshaped.
	Rate string
	// ControlNS gives the lab a network namespace of its own for the
	// control machine (Lab.ControlNetns), on the bridge at Lab.ControlAddress
	// and shaped at Rate like a host: what runs there (`ip netns exec NS
	// sealflow run ...`) reaches the hosts as a control machine on the
	// lab's network would.
	ControlNS bool
	// Log receives progress lines; may be nil.
	Log func(format string, args ...any)
}

// Lab is a running lab.
type Lab struct {
	Name, Dir, Subnet, Gateway string
	Hosts                      []Host
	// Inventory, KnownHosts and Key are file paths: the sealflow
	// inventory of the hosts, their host keys by address, and the client
	// private key authorized for root (and User) on every host.
	Inventory, KnownHosts, Key string
	// Password is "" unless Config.Password or Config.User was set.
	Password string
	User     string
	// Rate is Config.Rate ("" when the links are not shaped).
	Rate string
	// ControlNetns and ControlAddress are the control namespace's name
	// and address ("" without Config.ControlNS).
	ControlNetns, ControlAddress string

	mu  sync.Mutex // guards Hosts and st
	st  state
	log func(format string, args ...any)
}

// Host is one lab host.
type Host struct {
	Name, Address, Group string
	// PID is the host's init process (PID 1 of its namespaces), as seen
	// from the machine.
	PID int
	// Link is the bridge's end of the host's link, in the machine's
	// network namespace (`ip link set LINK down` cuts the host off).
	Link string
}

// NeedError says the machine lacks something the lab needs, and how to
// get it.
type NeedError struct{ What, Fix string }

func (e NeedError) Error() string { return fmt.Sprintf("lab needs %s: %s", e.What, e.Fix) }

// InputError is a problem with what the user asked for (a bad name, a lab
// that does not exist, a name or directory already taken), not with the
// machine: the user fixes it by asking otherwise.
type InputError struct{ Err error }

func (e InputError) Error() string { return e.Err.Error() }
func (e InputError) Unwrap() error { return e.Err }

// Host returns the host called name.
func (l *Lab) Host(name string) (Host, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// UpperDirs returns the overlay upper directories of host: what the host
// wrote to its /etc, /usr, /var/lib, /var/log, /var/cache, /var/spool,
// /root, /home and /opt. Nil when there is no such host.
func (l *Lab) UpperDirs(host string) []string {
	if _, ok := l.Host(host); !ok {
		return nil
	}
	var dirs []string
	for _, d := range overlayDirs() {
		dirs = append(dirs, filepath.Join(hostDir(l.Dir, host), "upper", d))
	}
	return dirs
}

func (l *Lab) logf(format string, args ...any) {
	if l.log != nil {
		l.log(format, args...)
	}
}
