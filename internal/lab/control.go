package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// startControl plugs the control namespace (Config.ControlNS; it exists)
// into the bridge: a veth whose inner end is eth0 with the control
// address, shaped like a host's link. Like the hosts, the namespace has no
// default route: it reaches the lab's subnet, the machine included.
func (l *Lab) startControl(ctx context.Context, prefix netip.Prefix) error {
	ns := l.st.ControlNetns
	if ns == "" {
		return nil
	}
	veth := controlVethName(l.Name)
	if err := run(ctx, "ip", "link", "add", veth, "master", l.st.Bridge, "up",
		"type", "veth", "peer", "name", "eth0", "netns", ns); err != nil {
		return err
	}
	if err := shapeLink(ctx, l.st.Rate, veth, ns, "eth0"); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", fmt.Sprintf("%s/%d", l.st.ControlAddress, prefix.Bits()), "dev", "eth0"},
		{"link", "set", "eth0", "up"},
	} {
		if err := run(ctx, "ip", append([]string{"-n", ns}, args...)...); err != nil {
			return err
		}
	}
	l.logf("lab %s: control namespace %s (%s) up", l.Name, ns, l.st.ControlAddress)
	return nil
}
