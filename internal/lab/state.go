package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// state is what the state file of a lab holds: enough to reach and to
// remove everything the lab made. It holds no secret (the password stays
// in Dir/password, 0600).
type state struct {
	Name      string      `json:"name"`
	Dir       string      `json:"dir"`
	Subnet    string      `json:"subnet"`
	Gateway   string      `json:"gateway"`
	Bridge    string      `json:"bridge"`
	User      string      `json:"user,omitempty"`
	Password  bool        `json:"password,omitempty"` // root password auth on
	HasPass   bool        `json:"has_password,omitempty"`
	NodeStart int         `json:"node_start"`
	NextIndex int         `json:"next_index"`
	Hosts     []hostState `json:"hosts"`
	// NodeStack hosts (Config.NodeStack) have cgroup subtrees in the
	// Hierarchies.
	NodeStack   bool        `json:"node_stack,omitempty"`
	Systemd     bool        `json:"systemd,omitempty"`
	KubeNode    bool        `json:"kube_node,omitempty"`
	Hierarchies []hierarchy `json:"cgroup_hierarchies,omitempty"`
	// Rate is Config.Rate: every link of the lab is shaped at it.
	Rate string `json:"rate,omitempty"`
	// ControlNetns and ControlAddress are the control namespace
	// (Config.ControlNS).
	ControlNetns   string `json:"control_netns,omitempty"`
	ControlAddress string `json:"control_address,omitempty"`
}

type hostState struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Group   string `json:"group"`
	Index   int    `json:"index"`
	PID     int    `json:"pid"`
	// Cgroups are the host's cgroup subtrees (NodeStack), on the machine.
	Cgroups []string `json:"cgroups,omitempty"`
}

// lockRegistry takes the machine-wide lab lock.
func lockRegistry() (unlock func(), err error) {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return nil, fmt.Errorf("create lab registry: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(registryDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lab registry lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lab registry: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func readState(name string) (state, error) {
	var st state
	b, err := os.ReadFile(statePath(name))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read lab state %s: %w (remove the lab with `sealflow lab down --name %s`)", statePath(name), err, name)
	}
	return st, nil
}

func writeState(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	path := statePath(st.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// labNames lists the labs that have a state file.
func labNames() ([]string, error) {
	ents, err := os.ReadDir(registryDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list labs: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// pickSubnet returns cfgSubnet checked against the labs and the machine's
// addresses, or a free /24 in 10.250.0.0/16. Call with the registry locked.
func pickSubnet(name, cfgSubnet string) (netip.Prefix, error) {
	var used []netip.Prefix
	names, err := labNames()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, n := range names {
		st, err := readState(n)
		if err != nil {
			continue
		}
		if p, err := netip.ParsePrefix(st.Subnet); err == nil {
			used = append(used, p)
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list the machine's addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if addr, ok := netip.AddrFromSlice(ipn.IP); ok && addr.Unmap().Is4() {
				ones, _ := ipn.Mask.Size()
				used = append(used, netip.PrefixFrom(addr.Unmap(), ones).Masked())
			}
		}
	}
	free := func(p netip.Prefix) bool {
		for _, u := range used {
			if u.Overlaps(p) {
				return false
			}
		}
		return true
	}
	if cfgSubnet != "" {
		p, err := parseSubnet(cfgSubnet)
		if err != nil {
			return p, err
		}
		if !free(p) {
			return p, fmt.Errorf("lab %s: subnet %s overlaps another lab or an address of this machine; pick another --subnet or leave it out", name, p)
		}
		return p, nil
	}
	// Start at a place derived from the name so that labs made one after
	// another do not all probe the same subnets.
	start := int(tag(name)[0]) // any stable byte will do
	for i := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte((start + i) % 256), 0}), 24)
		if free(p) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("lab %s: no free /24 left in 10.250.0.0/16; give --subnet or remove labs (`sealflow lab ls`)", name)
}

// hostsFromState sets l.Hosts from l.st.
func (l *Lab) hostsFromState() {
	hosts := make([]Host, 0, len(l.st.Hosts)) // a new slice: callers may hold the old one
	for _, h := range l.st.Hosts {
		hosts = append(hosts, Host{Name: h.Name, Address: h.Address, Group: h.Group, PID: h.PID, Link: vethName(l.st.Name, h.Index)})
	}
	l.Hosts = hosts
}

// newLab returns the lab of st, without its password.
func newLab(st state) *Lab {
	l := &Lab{
		Name:           st.Name,
		Dir:            st.Dir,
		Subnet:         st.Subnet,
		Gateway:        st.Gateway,
		User:           st.User,
		Inventory:      filepath.Join(st.Dir, "inventory.yaml"),
		KnownHosts:     filepath.Join(st.Dir, "known_hosts"),
		Key:            filepath.Join(st.Dir, "id_ed25519"),
		Rate:           st.Rate,
		ControlNetns:   st.ControlNetns,
		ControlAddress: st.ControlAddress,
		st:             st,
	}
	l.hostsFromState()
	return l
}

// labFromState returns the lab of st.
func labFromState(st state) (*Lab, error) {
	l := newLab(st)
	if st.HasPass {
		b, err := os.ReadFile(filepath.Join(st.Dir, "password"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // missing: up did not get that far
			return nil, fmt.Errorf("lab %s: read password: %w", st.Name, err)
		}
		l.Password = strings.TrimSpace(string(b))
	}
	return l, nil
}

// Open returns the lab called name from its state file.
func Open(name string) (*Lab, error) {
	if err := checkName("lab", name, maxLabName); err != nil {
		return nil, InputError{err}
	}
	st, err := readState(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, InputError{fmt.Errorf("lab %s not found (no %s); see `sealflow lab ls`: %w", name, statePath(name), err)}
	}
	if err != nil {
		return nil, err
	}
	return labFromState(st)
}

// List returns the labs of this machine, by name.
func List() ([]*Lab, error) {
	names, err := labNames()
	if err != nil {
		return nil, err
	}
	var labs []*Lab
	for _, n := range names {
		if checkName("lab", n, maxLabName) != nil {
			continue // not a lab's state file
		}
		l, err := Open(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return labs, err
		}
		labs = append(labs, l)
	}
	return labs, nil
}
