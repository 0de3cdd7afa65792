package lvscare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes lvscare adds (ip route ... proto 76), so
// they are told apart from everyone else's and removed on clean.
const RouteProtocol = 76

// netlinkTimeout bounds each route or address exchange with the kernel.
const netlinkTimeout = 5 * time.Second

// routes adds and removes lvscare's routes and addresses through netlink.
type routes struct{ h *netlink.Handle }

func newRoutes(netnsFD int) (*routes, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if netnsFD != 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(netnsFD), unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink route socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	return &routes{h: h}, nil
}

func (r *routes) close() { r.h.Close() }

func host32(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}
}

// find returns lvscare's route to vip or, when someone else installed a
// /32 route to it, that one; nil when there is none.
func (r *routes) find(ctx context.Context, vip netip.Addr) (*netlink.Route, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	filter := &netlink.Route{Dst: host32(vip), Table: unix.RT_TABLE_UNSPEC}
	list, err := r.h.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes to %s: %w", vip, err)
	}
	var foreign *netlink.Route
	for i := range list {
		if list[i].Protocol == RouteProtocol {
			return &list[i], nil
		}
		if foreign == nil {
			foreign = &list[i]
		}
	}
	return foreign, nil
}

// add routes vip the way via is routed: over the same link and gateway,
// or as a local address when via is local (a real server on loopback).
// A /32 route someone else installed is left alone.
func (r *routes) add(ctx context.Context, vip, via netip.Addr) error {
	cur, err := r.find(ctx, vip)
	if err != nil {
		return err
	}
	if cur != nil && cur.Protocol != RouteProtocol {
		return nil
	}
	got, err := r.h.RouteGet(via.AsSlice())
	if err != nil || len(got) == 0 {
		return fmt.Errorf("route to real server %s (to route the VIP %s the same way): %w", via, vip, errors.Join(err, errNoRoute(len(got))))
	}
	g := got[0]
	rt := netlink.Route{Dst: host32(vip), Protocol: RouteProtocol}
	if g.Type == unix.RTN_LOCAL {
		lo, err := r.h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find link lo: %w", err)
		}
		rt.LinkIndex = lo.Attrs().Index
		rt.Type = unix.RTN_LOCAL
		rt.Table = unix.RT_TABLE_LOCAL
		rt.Scope = netlink.SCOPE_HOST
	} else {
		rt.LinkIndex = g.LinkIndex
		rt.Gw = g.Gw
		rt.Src = g.Src
		rt.Table = unix.RT_TABLE_MAIN
		rt.Scope = netlink.SCOPE_LINK
		if g.Gw != nil {
			rt.Scope = netlink.SCOPE_UNIVERSE
		}
	}
	if err := r.h.RouteReplace(&rt); err != nil {
		return fmt.Errorf("add route %s: %w", rt.Dst, err)
	}
	return nil
}

func errNoRoute(n int) error {
	if n == 0 {
		return errors.New("no route")
	}
	return nil
}

// del removes rt if it is lvscare's.
func (r *routes) del(ctx context.Context, rt *netlink.Route) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rt.Protocol != RouteProtocol {
		return nil
	}
	if err := r.h.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", rt.Dst, err)
	}
	return nil
}
