package lvscare

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mnl "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// NFTTable is the nftables table lvscare owns (family ip). Nothing else is
// ever touched.
const NFTTable = "lvscare"

// nftOpTimeout bounds one netlink exchange when ctx has no earlier deadline.
const nftOpTimeout = 5 * time.Second

// NFTables is the nftables backend. Each virtual server K has, in table
// ip lvscare:
//
//	map rs_K    { type integer : ipv4_addr . inet_service }  index → real server
//	chain out_K (nat, output, -100)         local processes
//	chain pre_K (nat, prerouting, -100)     pods and other namespaces
//	chain rejout_K (filter, output, 0)
//	chain rejfwd_K (filter, forward, 0)
//
// The nat chains hold `ip daddr VIP tcp dport PORT dnat to numgen inc mod
// N map @rs_K` (round robin) while N > 0 servers are up, and nothing when
// none is. The filter chains always hold `ip daddr VIP tcp dport PORT
// reject with tcp reset`: it sees only connections no nat rule redirected,
// so with no server up connections fail at once (a reject in a nat chain
// drops silently). A /32 route to the VIP (protocol RouteProtocol) lets
// local processes reach it on a host without a default route. A change of
// real servers is one netlink batch.
type NFTables struct {
	netns  int // 0: the current network namespace
	routes *routes
}

// NewNFTables returns the nftables backend for the network namespace netns
// (an open file descriptor; 0 for the current one).
func NewNFTables(netns int) (*NFTables, error) {
	r, err := newRoutes(netns)
	if err != nil {
		return nil, err
	}
	return &NFTables{netns: netns, routes: r}, nil
}

// Name returns "nftables".
func (n *NFTables) Name() string { return string(podspec.ModeNFTables) }

// Close releases the netlink handle.
func (n *NFTables) Close() error {
	n.routes.close()
	return nil
}

// conn returns a netlink connection whose exchanges end by ctx's deadline.
func (n *NFTables) conn(ctx context.Context) (*nftables.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok || time.Until(dl) > nftOpTimeout {
		dl = time.Now().Add(nftOpTimeout)
	}
	opts := []nftables.ConnOption{nftables.WithSockOptions(func(c *mnl.Conn) error { return c.SetDeadline(dl) })}
	if n.netns != 0 {
		opts = append(opts, nftables.WithNetNSFd(n.netns))
	}
	return nftables.New(opts...)
}

// nftKey names the objects of vs: 10.103.97.2:6443 → 10_103_97_2_6443.
func nftKey(vs netip.AddrPort) string {
	return strings.ReplaceAll(vs.Addr().String(), ".", "_") + "_" + fmt.Sprint(vs.Port())
}

type nftObjects struct {
	table                    *nftables.Table
	set                      *nftables.Set
	out, pre, rejout, rejfwd *nftables.Chain
	chains                   int // chains in the table (all VSs)
	sets                     int // sets in the table (all VSs)
}

var nftMapData = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)

func (n *NFTables) table() *nftables.Table {
	return &nftables.Table{Name: NFTTable, Family: nftables.TableFamilyIPv4}
}

func (n *NFTables) natChain(name string, hook *nftables.ChainHook) *nftables.Chain {
	return &nftables.Chain{
		Name: name, Table: n.table(), Type: nftables.ChainTypeNAT,
		Hooknum: hook, Priority: nftables.ChainPriorityNATDest,
	}
}

func (n *NFTables) filterChain(name string, hook *nftables.ChainHook) *nftables.Chain {
	return &nftables.Chain{
		Name: name, Table: n.table(), Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter,
	}
}

// lookup finds what exists of vs's objects.
func (n *NFTables) lookup(c *nftables.Conn, vs netip.AddrPort) (nftObjects, error) {
	var o nftObjects
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return o, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == NFTTable {
			o.table = t
		}
	}
	if o.table == nil {
		return o, nil
	}
	k := nftKey(vs)
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return o, fmt.Errorf("list nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != NFTTable {
			continue
		}
		o.chains++
		switch ch.Name {
		case "out_" + k:
			o.out = ch
		case "pre_" + k:
			o.pre = ch
		case "rejout_" + k:
			o.rejout = ch
		case "rejfwd_" + k:
			o.rejfwd = ch
		}
	}
	sets, err := c.GetSets(o.table)
	if err != nil {
		return o, fmt.Errorf("list nftables sets of table %s: %w", NFTTable, err)
	}
	for _, s := range sets {
		o.sets++
		if s.Name == "rs_"+k {
			o.set = s
		}
	}
	return o, nil
}

func (o nftObjects) chainList() []*nftables.Chain {
	var out []*nftables.Chain
	for _, c := range []*nftables.Chain{o.out, o.pre, o.rejout, o.rejfwd} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (o nftObjects) none() bool { return o.set == nil && len(o.chainList()) == 0 }
func (o nftObjects) all() bool  { return o.set != nil && len(o.chainList()) == 4 }

// Get implements Backend.
func (n *NFTables) Get(ctx context.Context, vs netip.AddrPort) (Service, error) {
	c, err := n.conn(ctx)
	if err != nil {
		return Service{}, err
	}
	o, err := n.lookup(c, vs)
	if err != nil {
		return Service{}, err
	}
	route, err := n.routes.find(ctx, vs.Addr())
	if err != nil {
		return Service{}, err
	}
	if o.none() {
		return Service{}, fmt.Errorf("nftables table %s: %s: %w", NFTTable, vs, ErrNotFound)
	}
	svc := Service{VS: vs, Intact: o.all() && route != nil}
	if o.set != nil {
		elems, err := c.GetSetElements(o.set)
		if err != nil {
			return Service{}, fmt.Errorf("list map %s: %w", o.set.Name, err)
		}
		for _, e := range elems {
			rs, ok := decodeRS(e.Val)
			if !ok {
				svc.Intact = false
				continue
			}
			svc.RS = append(svc.RS, rs)
		}
		svc.RS = sortedRS(svc.RS)
	}
	for _, ch := range o.chainList() {
		rules, err := c.GetRules(o.table, ch)
		if err != nil {
			return Service{}, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		if !rulesMatch(ch, rules, len(svc.RS)) {
			svc.Intact = false
		}
	}
	return svc, nil
}

// rulesMatch reports whether a chain holds what it should with n servers
// up: a reject rule in the filter chains; one rule spreading over n
// servers in the nat chains, none when n is 0.
func rulesMatch(ch *nftables.Chain, rules []*nftables.Rule, n int) bool {
	if ch.Type == nftables.ChainTypeFilter {
		return len(rules) == 1 && hasExpr(rules[0], func(e expr.Any) bool { _, ok := e.(*expr.Reject); return ok })
	}
	if n == 0 {
		return len(rules) == 0
	}
	return len(rules) == 1 && hasExpr(rules[0], func(e expr.Any) bool {
		g, ok := e.(*expr.Numgen)
		return ok && g.Modulus == uint32(n)
	})
}

func hasExpr(r *nftables.Rule, match func(expr.Any) bool) bool {
	for _, e := range r.Exprs {
		if match(e) {
			return true
		}
	}
	return false
}

// Add implements Backend.
func (n *NFTables) Add(ctx context.Context, vs netip.AddrPort, via netip.Addr) error {
	if err := podspec.CheckAddr("virtual server", vs); err != nil {
		return err
	}
	c, err := n.conn(ctx)
	if err != nil {
		return err
	}
	o, err := n.lookup(c, vs)
	if err != nil {
		return err
	}
	if !o.none() {
		return fmt.Errorf("nftables table %s: %s: %w", NFTTable, vs, ErrExists)
	}
	k := nftKey(vs)
	t := c.AddTable(n.table())
	set := &nftables.Set{
		Table: t, Name: "rs_" + k, IsMap: true,
		KeyType: nftables.TypeInteger, KeyByteOrder: binaryutil.NativeEndian,
		DataType: nftMapData,
	}
	if err := c.AddSet(set, nil); err != nil {
		return fmt.Errorf("add map %s: %w", set.Name, err)
	}
	c.AddChain(n.natChain("out_"+k, nftables.ChainHookOutput))
	c.AddChain(n.natChain("pre_"+k, nftables.ChainHookPrerouting))
	for _, ch := range []*nftables.Chain{
		n.filterChain("rejout_"+k, nftables.ChainHookOutput),
		n.filterChain("rejfwd_"+k, nftables.ChainHookForward),
	} {
		c.AddChain(ch)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rejectRule(vs)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add %s to nftables table %s: %w", vs, NFTTable, err)
	}
	if err := n.routes.add(ctx, vs.Addr(), via); err != nil {
		return err
	}
	return nil
}

// Set implements Backend: one batch flushes the map, fills it and
// replaces both rules.
func (n *NFTables) Set(ctx context.Context, vs netip.AddrPort, rs []netip.AddrPort) error {
	if err := checkSet(rs); err != nil {
		return err
	}
	c, err := n.conn(ctx)
	if err != nil {
		return err
	}
	o, err := n.lookup(c, vs)
	if err != nil {
		return err
	}
	if !o.all() {
		return fmt.Errorf("nftables table %s: %s: %w", NFTTable, vs, ErrNotFound)
	}
	rs = sortedRS(rs)
	elems := make([]nftables.SetElement, len(rs))
	for i, r := range rs {
		elems[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), Val: encodeRS(r)}
	}
	c.FlushSet(o.set)
	if len(elems) > 0 {
		if err := c.SetAddElements(o.set, elems); err != nil {
			return fmt.Errorf("fill map %s: %w", o.set.Name, err)
		}
	}
	for _, ch := range []*nftables.Chain{o.out, o.pre} {
		c.FlushChain(ch)
		if len(rs) > 0 {
			c.AddRule(&nftables.Rule{Table: o.table, Chain: ch, Exprs: dnatRule(vs, o.set, len(rs))})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("set real servers of %s in nftables: %w", vs, err)
	}
	return nil
}

// Delete implements Backend. The table goes too when nothing else is in it.
func (n *NFTables) Delete(ctx context.Context, vs netip.AddrPort) error {
	c, err := n.conn(ctx)
	if err != nil {
		return err
	}
	o, err := n.lookup(c, vs)
	if err != nil {
		return err
	}
	route, err := n.routes.find(ctx, vs.Addr())
	if err != nil {
		return err
	}
	if o.none() && (route == nil || route.Protocol != RouteProtocol) {
		return fmt.Errorf("nftables table %s: %s: %w", NFTTable, vs, ErrNotFound)
	}
	removed := 0
	for _, ch := range o.chainList() {
		c.FlushChain(ch)
		c.DelChain(ch)
		removed++
	}
	sets := 0
	if o.set != nil {
		c.DelSet(o.set)
		sets = 1
	}
	if o.table != nil && o.chains == removed && o.sets == sets {
		c.DelTable(o.table)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("delete %s from nftables table %s: %w", vs, NFTTable, err)
	}
	if route != nil {
		if err := n.routes.del(ctx, route); err != nil {
			return err
		}
	}
	return nil
}

// matchVS matches VIP:PORT/tcp.
func matchVS(vs netip.AddrPort) []expr.Any {
	vip := vs.Addr().As4()
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, vs.Port())
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
	}
}

// rejectRule refuses VIP:PORT/tcp with a TCP reset.
func rejectRule(vs netip.AddrPort) []expr.Any {
	return append(matchVS(vs), &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
}

// dnatRule spreads VIP:PORT/tcp over the n entries of set, round robin.
func dnatRule(vs netip.AddrPort, set *nftables.Set, n int) []expr.Any {
	return append(matchVS(vs),
		&expr.Numgen{Register: 1, Modulus: uint32(n), Type: unix.NFT_NG_INCREMENTAL},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
		// The map's data is address (reg 1, 4 bytes) . port (next 32-bit register, 9).
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
			RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 9, RegProtoMax: 9, Specified: true},
	)
}

// encodeRS renders a map value: 4 address bytes, 2 port bytes (network
// order), 2 bytes of padding.
func encodeRS(r netip.AddrPort) []byte {
	a := r.Addr().As4()
	b := make([]byte, 8)
	copy(b, a[:])
	binary.BigEndian.PutUint16(b[4:], r.Port())
	return b
}

func decodeRS(b []byte) (netip.AddrPort, bool) {
	if len(b) < 6 {
		return netip.AddrPort{}, false
	}
	a := netip.AddrFrom4([4]byte(b[:4]))
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[4:6])), true
}
