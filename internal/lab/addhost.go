package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// AddHost starts a new host called name in group ("masters", "nodes" or
// another) and adds it to the inventory, known_hosts and the state file.
// Masters get the next free address from .11, other groups from the
// nodes' first address.
func (l *Lab) AddHost(ctx context.Context, name, group string) (Host, error) {
	if err := checkName("host", name, maxHostName); err != nil {
		return Host{}, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if name == controlHost {
		return Host{}, fmt.Errorf("lab %s: host name %q is the control namespace's; pick another", l.Name, name)
	}
	if err := checkName("group", group, maxHostName); err != nil {
		return Host{}, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	prefix, err := netip.ParsePrefix(l.Subnet)
	if err != nil {
		return Host{}, fmt.Errorf("lab %s: %w", l.Name, err)
	}

	l.mu.Lock()
	for _, h := range l.st.Hosts {
		if h.Name == name {
			l.mu.Unlock()
			return Host{}, fmt.Errorf("lab %s already has a host %s", l.Name, name)
		}
	}
	used := map[string]bool{}
	for _, h := range l.st.Hosts {
		used[h.Address] = true
	}
	start := l.st.NodeStart
	if group == "masters" {
		start = firstMaster
	}
	var addr netip.Addr
	for off := start; off <= lastHost; off++ {
		if a := offsetAddr(prefix, off); !used[a.String()] && prefix.Contains(a) {
			addr = a
			break
		}
	}
	if !addr.IsValid() {
		l.mu.Unlock()
		return Host{}, fmt.Errorf("lab %s: no free address left in %s for host %s", l.Name, l.Subnet, name)
	}
	h := l.st.addHost(name, group, addr)
	err = writeState(l.st) // so that Down finds the new netns if we stop here
	l.mu.Unlock()
	if err != nil {
		return Host{}, err
	}

	unlock, err := lockRegistry() // see reserve: ip netns add under the lock
	if err != nil {
		return Host{}, err
	}
	err = run(ctx, "ip", "netns", "add", netnsName(l.Name, name))
	unlock()
	if err != nil {
		return Host{}, l.dropHost(name, fmt.Errorf("lab %s host %s: %w", l.Name, name, err))
	}
	pid, err := l.startHost(ctx, h, prefix)
	if err != nil {
		return Host{}, l.dropHost(name, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.st.Hosts {
		if l.st.Hosts[i].Name == name {
			l.st.Hosts[i].PID = pid
		}
	}
	l.hostsFromState()
	if err := writeState(l.st); err != nil {
		return Host{}, err
	}
	if err := l.writeInventory(); err != nil {
		return Host{}, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	if err := l.writeKnownHosts(); err != nil {
		return Host{}, fmt.Errorf("lab %s: %w", l.Name, err)
	}
	out, _ := l.hostLocked(name)
	return out, nil
}

func (l *Lab) hostLocked(name string) (Host, bool) {
	for _, h := range l.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// dropHost undoes a failed AddHost as far as it can and returns cause.
func (l *Lab) dropHost(name string, cause error) error {
	ctx := context.Background()
	for _, pid := range labInits(l.Name) {
		if _, h, ok := initOf(cmdline(pid)); ok && h == name {
			killWait(ctx, pid)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var idx int
	kept := l.st.Hosts[:0]
	for _, h := range l.st.Hosts {
		if h.Name == name {
			idx = h.Index
			removeCgroups(ctx, h.Cgroups)
			continue
		}
		kept = append(kept, h)
	}
	l.st.Hosts = kept
	l.hostsFromState()
	run(ctx, "ip", "netns", "delete", netnsName(l.Name, name))
	if linkExists(vethName(l.Name, idx)) {
		run(ctx, "ip", "link", "delete", vethName(l.Name, idx))
	}
	if err := writeState(l.st); err != nil {
		return fmt.Errorf("%w (and %v)", cause, err)
	}
	return cause
}
