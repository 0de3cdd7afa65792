package lab

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ControlEgress returns the bytes the control machine has sent into the
// lab so far: with a control namespace, what its link has sent; without,
// what the machine itself has sent through the bridge (frames the bridge
// forwards from one host to another do not count).
func (l *Lab) ControlEgress() (uint64, error) {
	var n uint64
	var err error
	if l.st.ControlNetns != "" {
		n, err = txBytes(l.st.ControlNetns, "eth0")
	} else {
		n, err = txBytes("", l.st.Bridge)
	}
	if err != nil {
		return 0, fmt.Errorf("lab %s: control machine's egress: %w (is the lab up? see `sealflow lab ls`)", l.Name, err)
	}
	return n, nil
}

// HostEgress returns the bytes host has sent on its link so far, to other
// hosts and to the control machine.
func (l *Lab) HostEgress(host string) (uint64, error) {
	if _, ok := l.Host(host); !ok {
		return 0, fmt.Errorf("lab %s has no host %q", l.Name, host)
	}
	n, err := txBytes(netnsName(l.Name, host), "eth0")
	if err != nil {
		return 0, fmt.Errorf("lab %s host %s: egress: %w", l.Name, host, err)
	}
	return n, nil
}

// txBytes returns the bytes link dev has sent, in the named network
// namespace ("" for the machine's).
func txBytes(nsName, dev string) (uint64, error) {
	ns := netns.None() // the machine's
	if nsName != "" {
		var err error
		if ns, err = netns.GetFromName(nsName); err != nil {
			return 0, fmt.Errorf("open netns %s: %w", nsName, err)
		}
		defer ns.Close()
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(dev)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", dev, err)
	}
	st := link.Attrs().Statistics
	if st == nil {
		return 0, fmt.Errorf("link %s: the kernel gave no statistics", dev)
	}
	return st.TxBytes, nil
}
