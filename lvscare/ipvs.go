package lvscare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// IPVSLink is the dummy link that holds the VIPs of the IPVS backend
// (IPVS answers a local client only when the VIP is a local address).
// Where the kernel has no dummy links, lo holds them.
const IPVSLink = "lvscare0"

// IPVS is the IPVS backend: a TCP service VIP:PORT with the rr scheduler
// and masquerading real servers, and the VIP as a /32 address on IPVSLink
// (or lo).
type IPVS struct {
	h      *ipvs.Handle
	routes *routes
}

// IPVSAvailable reports whether the kernel answers the IPVS netlink family.
func IPVSAvailable() bool {
	_, err := netlink.GenlFamilyGet("IPVS")
	return err == nil
}

// NewIPVS returns the IPVS backend for the current network namespace.
func NewIPVS() (*IPVS, error) {
	if !IPVSAvailable() {
		return nil, errors.New("the kernel has no IPVS (load module ip_vs, or use --mode nftables)")
	}
	h, err := ipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("open IPVS netlink socket: %w", err)
	}
	r, err := newRoutes(0)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &IPVS{h: h, routes: r}, nil
}

// Name returns "ipvs".
func (v *IPVS) Name() string { return string(podspec.ModeIPVS) }

// Close releases the netlink sockets.
func (v *IPVS) Close() error {
	v.h.Close()
	v.routes.close()
	return nil
}

func ipvsService(vs netip.AddrPort) *ipvs.Service {
	return &ipvs.Service{
		Address: vs.Addr().AsSlice(), Port: vs.Port(), Protocol: syscall.IPPROTO_TCP,
		AddressFamily: syscall.AF_INET, SchedName: ipvs.RoundRobin, Netmask: 0xffffffff,
	}
}

func (v *IPVS) find(ctx context.Context, vs netip.AddrPort) (*ipvs.Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := v.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list IPVS services: %w", err)
	}
	for _, s := range all {
		a, ok := netip.AddrFromSlice(s.Address)
		if ok && s.Protocol == syscall.IPPROTO_TCP && s.FWMark == 0 &&
			netip.AddrPortFrom(a.Unmap(), s.Port) == vs {
			return s, nil
		}
	}
	return nil, nil
}

// Get implements Backend.
func (v *IPVS) Get(ctx context.Context, vs netip.AddrPort) (Service, error) {
	s, err := v.find(ctx, vs)
	if err != nil {
		return Service{}, err
	}
	link, err := v.addrLink(vs.Addr())
	if err != nil {
		return Service{}, err
	}
	if s == nil {
		return Service{}, fmt.Errorf("IPVS: %s: %w", vs, ErrNotFound)
	}
	dests, err := v.h.GetDestinations(s)
	if err != nil {
		return Service{}, fmt.Errorf("list IPVS destinations of %s: %w", vs, err)
	}
	svc := Service{VS: vs, Intact: link != nil && s.SchedName == ipvs.RoundRobin}
	for _, d := range dests {
		a, ok := netip.AddrFromSlice(d.Address)
		if !ok {
			svc.Intact = false
			continue
		}
		if d.ConnectionFlags&ipvs.ConnectionFlagFwdMask != ipvs.ConnectionFlagMasq {
			svc.Intact = false
		}
		svc.RS = append(svc.RS, netip.AddrPortFrom(a.Unmap(), d.Port))
	}
	svc.RS = sortedRS(svc.RS)
	return svc, nil
}

// Add implements Backend.
func (v *IPVS) Add(ctx context.Context, vs netip.AddrPort, _ netip.Addr) error {
	if err := podspec.CheckAddr("virtual server", vs); err != nil {
		return err
	}
	s, err := v.find(ctx, vs)
	if err != nil {
		return err
	}
	if s != nil {
		return fmt.Errorf("IPVS: %s: %w", vs, ErrExists)
	}
	if err := v.addAddr(vs.Addr()); err != nil {
		return err
	}
	if err := v.h.NewService(ipvsService(vs)); err != nil {
		return fmt.Errorf("add IPVS service %s: %w", vs, err)
	}
	return nil
}

func ipvsDest(r netip.AddrPort) *ipvs.Destination {
	return &ipvs.Destination{
		Address: r.Addr().AsSlice(), Port: r.Port(), Weight: 1,
		ConnectionFlags: ipvs.ConnectionFlagMasq, AddressFamily: syscall.AF_INET,
	}
}

// Set implements Backend: destinations are added before others are
// removed, so the service never runs dry in between.
func (v *IPVS) Set(ctx context.Context, vs netip.AddrPort, rs []netip.AddrPort) error {
	if err := checkSet(rs); err != nil {
		return err
	}
	s, err := v.find(ctx, vs)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("IPVS: %s: %w", vs, ErrNotFound)
	}
	dests, err := v.h.GetDestinations(s)
	if err != nil {
		return fmt.Errorf("list IPVS destinations of %s: %w", vs, err)
	}
	want := map[netip.AddrPort]bool{}
	for _, r := range rs {
		want[r] = true
	}
	have := map[netip.AddrPort]*ipvs.Destination{}
	for _, d := range dests {
		if a, ok := netip.AddrFromSlice(d.Address); ok {
			have[netip.AddrPortFrom(a.Unmap(), d.Port)] = d
		}
	}
	for _, r := range sortedRS(rs) {
		if _, ok := have[r]; !ok {
			if err := v.h.NewDestination(s, ipvsDest(r)); err != nil {
				return fmt.Errorf("add IPVS destination %s to %s: %w", r, vs, err)
			}
		}
	}
	for r, d := range have {
		if !want[r] {
			if err := v.h.DelDestination(s, d); err != nil {
				return fmt.Errorf("delete IPVS destination %s from %s: %w", r, vs, err)
			}
		}
	}
	return nil
}

// Delete implements Backend.
func (v *IPVS) Delete(ctx context.Context, vs netip.AddrPort) error {
	s, err := v.find(ctx, vs)
	if err != nil {
		return err
	}
	link, err := v.addrLink(vs.Addr())
	if err != nil {
		return err
	}
	if s == nil && link == nil {
		return fmt.Errorf("IPVS: %s: %w", vs, ErrNotFound)
	}
	if s != nil {
		if err := v.h.DelService(s); err != nil {
			return fmt.Errorf("delete IPVS service %s: %w", vs, err)
		}
	}
	if link != nil {
		return v.delAddr(link, vs.Addr())
	}
	return nil
}

// addrLink returns the link of lvscare's that holds vip, or nil.
func (v *IPVS) addrLink(vip netip.Addr) (netlink.Link, error) {
	for _, name := range []string{IPVSLink, "lo"} {
		l, err := v.routes.h.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				continue
			}
			return nil, fmt.Errorf("find link %s: %w", name, err)
		}
		addrs, err := v.routes.h.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", name, err)
		}
		for _, a := range addrs {
			if ones, _ := a.Mask.Size(); ones == 32 && a.IP.Equal(vip.AsSlice()) {
				return l, nil
			}
		}
	}
	return nil, nil
}

// addAddr puts vip/32 on IPVSLink, created as a dummy link when missing,
// or on lo when the kernel has no dummy links.
func (v *IPVS) addAddr(vip netip.Addr) error {
	h := v.routes.h
	l, err := h.LinkByName(IPVSLink)
	if err != nil {
		d := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: IPVSLink}}
		if err := h.LinkAdd(d); err != nil {
			l = nil
		} else if l, err = h.LinkByName(IPVSLink); err != nil {
			return fmt.Errorf("find link %s: %w", IPVSLink, err)
		}
	}
	if l == nil {
		if l, err = h.LinkByName("lo"); err != nil {
			return fmt.Errorf("find link lo: %w", err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set link %s up: %w", l.Attrs().Name, err)
		}
	}
	a := &netlink.Addr{IPNet: host32(vip)}
	if err := h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", a.IPNet, l.Attrs().Name, err)
	}
	return nil
}

// delAddr removes vip from l, and IPVSLink itself once it holds nothing.
func (v *IPVS) delAddr(l netlink.Link, vip netip.Addr) error {
	h := v.routes.h
	if err := h.AddrDel(l, &netlink.Addr{IPNet: host32(vip)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete address %s from %s: %w", vip, l.Attrs().Name, err)
	}
	if l.Attrs().Name != IPVSLink {
		return nil
	}
	left, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", IPVSLink, err)
	}
	for _, a := range left {
		if !a.IP.IsLinkLocalUnicast() {
			return nil
		}
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s: %w", IPVSLink, err)
	}
	return nil
}
