package plans

import (
	"fmt"
	"regexp"

	"github.com/goccy/go-yaml/ast"
)

var (
	groupNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)
	hostNameRE  = regexp.MustCompile(`^[A-Za-z0-9_:][A-Za-z0-9._:-]*$`)
)

var (
	inventoryKeys = []string{"defaults", "groups"}
	hostKeys      = []string{"name", "address", "user", "port", "labels", "key", "key_passphrase_env", "password_env", "password_file", "become", "tty", "bastion"}
	defaultKeys   = []string{"user", "port", "labels", "key", "key_passphrase_env", "password_env", "password_file", "become", "tty", "bastion"}
	bastionKeys   = []string{"address", "user", "port", "key"}
)

// hostSpec is a host entry as written: set fields only.
type hostSpec struct {
	name, address, user                           *string
	port                                          *int
	labels                                        map[string]string
	key, keyPassphraseEnv, passwordEnv, passwFile *string
	become, tty                                   *bool
	bastion                                       *Bastion
	pos                                           Position
}

// inventory decodes a `hosts:` mapping (or an inventory file of the same
// shape) into hosts in first-appearance order and groups in file order.
// An inventory file (file true) may also hold vars: they are returned as
// written, for inventoryVars.
func (d *decoder) inventory(n ast.Node, file bool) ([]*Host, []*Group, *entry) {
	es, ok := d.mapping(n, "hosts")
	if !ok {
		return nil, nil, nil
	}
	keys := inventoryKeys
	if file {
		keys = append(keys[:len(keys):len(keys)], "vars")
	}
	var defaults hostSpec
	var groupsNode ast.Node
	var vars *entry
	for _, e := range es {
		switch {
		case e.key == "defaults":
			defaults = d.hostSpec(e.val, "hosts.defaults", defaultKeys)
		case e.key == "groups":
			groupsNode = e.val
		case e.key == "vars" && file:
			vars = &e
		default:
			d.errs.add(d.pos(e.keyNode), didYouMean(e.key, keys, "keys"), "unknown key %q in hosts", e.key)
		}
	}
	if groupsNode == nil {
		return nil, nil, vars
	}
	ges, ok := d.mapping(groupsNode, "hosts.groups")
	if !ok {
		return nil, nil, vars
	}
	var (
		hosts      []*Host
		groups     []*Group
		byName     = map[string]*Host{}
		unnamedLoc *Host
	)
	for _, ge := range ges {
		gname := ge.key
		what := "group " + gname
		switch {
		case gname == "all":
			d.errs.add(d.pos(ge.keyNode), "`on: all` already selects every host; pick another name", "group name \"all\" is reserved")
			continue
		case !groupNameRE.MatchString(gname):
			d.errs.add(d.pos(ge.keyNode), "", "bad group name %q: use lowercase letters, digits, '-' and '_'", gname)
			continue
		}
		g := &Group{Name: gname}
		groups = append(groups, g)
		items, ok := d.sequence(ge.val, what)
		if !ok {
			continue
		}
		for i, item := range items {
			spec := d.groupEntry(item, fmt.Sprintf("%s[%d]", what, i))
			if spec.address == nil {
				continue // reported by groupEntry
			}
			h := resolveHost(spec, defaults)
			if !hostNameRE.MatchString(h.Name) {
				d.errs.add(spec.pos, "", "bad host name %q: use letters, digits, '.', '-', '_' and ':'", h.Name)
				continue
			}
			if h.Name == "all" {
				d.errs.add(spec.pos, "give the host another name: name: NAME", "host name \"all\" is reserved: it means every host in on: and --limit")
				continue
			}
			if h.Local() && spec.name == nil {
				if unnamedLoc != nil {
					d.errs.add(spec.pos, "add name: NAME to each local host", "two local hosts without a name (the first at line %d): give each local host a name", unnamedLoc.Pos.Line)
					continue
				}
				unnamedLoc = h
			}
			if prev, seen := byName[h.Name]; seen {
				if prev.Address != h.Address {
					d.errs.add(spec.pos, "give each host its own name", "host name %q is used for %s here and for %s at line %d", h.Name, h.Address, prev.Address, prev.Pos.Line)
					continue
				}
				if containsString(prev.Groups, gname) {
					d.errs.add(spec.pos, "", "host %q is listed twice in group %s", h.Name, gname)
					continue
				}
				prev.Groups = append(prev.Groups, gname)
				g.Hosts = append(g.Hosts, prev)
				continue
			}
			h.Groups = []string{gname}
			h.Index = len(g.Hosts)
			byName[h.Name] = h
			hosts = append(hosts, h)
			g.Hosts = append(g.Hosts, h)
		}
	}
	groupNames := map[string]bool{}
	for _, g := range groups {
		groupNames[g.Name] = true
	}
	for _, h := range hosts {
		if groupNames[h.Name] {
			d.errs.add(h.Pos, "rename the host or the group", "host name %q is also a group name", h.Name)
		}
	}
	return hosts, groups, vars
}

// inventoryVars sets the plan's vars from an inventory's vars: mapping,
// before --set (which wins). A var the plan does not declare is left out:
// one inventory serves several plans (ha, add-node, clean). A value keeps
// the type the plan gives the var; a string var takes any scalar.
func (d *decoder) inventoryVars(p *Plan, e *entry) {
	if e == nil {
		return
	}
	es, ok := d.mapping(e.val, "vars")
	if !ok {
		return
	}
	for _, ve := range es {
		old, declared := p.Vars[ve.key]
		if !declared {
			continue
		}
		v, ok := d.value(ve.val, "vars."+ve.key, 0)
		if !ok {
			continue
		}
		if got, ok := sameKind(old, v); ok {
			p.Vars[ve.key] = got
			continue
		}
		d.errs.add(d.pos(ve.val), "", "inventory var %s: the plan's %s is %s; this value is %s", ve.key, ve.key, kindOf(old), kindOf(v))
	}
}

// sameKind returns v as the kind of the plan's value old: any scalar for
// a string (or an unset) var, the same kind otherwise.
func sameKind(old, v any) (any, bool) {
	switch old.(type) {
	case nil, string:
		if s, ok := scalarString(v); ok {
			return s, true
		}
		return nil, false
	case float64:
		if n, ok := v.(int); ok {
			return float64(n), true
		}
	}
	return v, kindOf(old) == kindOf(v)
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "empty"
	case string:
		return "a string"
	case int:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// groupEntry decodes one item of a group list: an address or a host map.
func (d *decoder) groupEntry(raw ast.Node, what string) hostSpec {
	n := d.resolve(raw)
	switch m := n.(type) {
	case *ast.StringNode:
		addr := m.Value
		spec := hostSpec{address: &addr, pos: d.pos(n)}
		if addr == "" {
			d.errs.add(spec.pos, "", "%s: empty address", what)
			spec.address = nil
			spec.pos = Position{}
		}
		return spec
	case *ast.MappingNode, *ast.MappingValueNode:
		return d.hostSpec(n, what, hostKeys)
	}
	d.errs.add(d.pos(orNode(n, raw)), "", "%s: want an address or a map with address:, got %s", what, typeName(n))
	return hostSpec{}
}

// hostSpec decodes a host map (or the defaults, with the keys allowed).
func (d *decoder) hostSpec(raw ast.Node, what string, allowed []string) hostSpec {
	spec := hostSpec{pos: d.pos(raw)}
	es, ok := d.mapping(raw, what)
	if !ok {
		spec.pos = Position{}
		return spec
	}
	strField := func(e entry) *string {
		s, ok := d.str(e.val, what+": "+e.key)
		if !ok {
			return nil
		}
		if s == "" {
			d.errs.add(d.pos(e.val), "", "%s: %s is empty", what, e.key)
			return nil
		}
		return &s
	}
	for _, e := range es {
		if !containsString(allowed, e.key) {
			hint := didYouMean(e.key, allowed, "keys")
			if containsString(hostKeys, e.key) {
				hint = "set " + e.key + " on each host"
			}
			d.errs.add(d.pos(e.keyNode), hint, "unknown key %q in %s", e.key, what)
			continue
		}
		switch e.key {
		case "name":
			spec.name = strField(e)
		case "address":
			spec.address = strField(e)
		case "user":
			spec.user = strField(e)
		case "port":
			if p, ok := d.port(e.val, what+": port"); ok {
				spec.port = &p
			}
		case "labels":
			spec.labels = d.labels(e.val, what+": labels")
		case "key":
			spec.key = strField(e)
		case "key_passphrase_env":
			spec.keyPassphraseEnv = strField(e)
		case "password_env":
			spec.passwordEnv = strField(e)
		case "password_file":
			spec.passwFile = strField(e)
		case "become":
			if b, ok := d.boolean(e.val, what+": become"); ok {
				spec.become = &b
			}
		case "tty":
			if b, ok := d.boolean(e.val, what+": tty"); ok {
				spec.tty = &b
			}
		case "bastion":
			spec.bastion = d.bastion(e.val, what+": bastion")
		}
	}
	if containsString(allowed, "address") && spec.address == nil && !hasKey(es, "address") {
		d.errs.add(spec.pos, "add address: HOST (or `local`)", "%s: host has no address", what)
		spec.pos = Position{}
	}
	return spec
}

func hasKey(es []entry, key string) bool {
	for _, e := range es {
		if e.key == key {
			return true
		}
	}
	return false
}

// port decodes a TCP port.
func (d *decoder) port(raw ast.Node, what string) (int, bool) {
	p, ok := d.integer(raw, what)
	if !ok {
		return 0, false
	}
	if p < 1 || p > 65535 {
		d.errs.add(d.pos(raw), "", "%s: bad port %d: want 1 to 65535", what, p)
		return 0, false
	}
	return p, true
}

// labels decodes a map of strings; scalar values keep their text.
func (d *decoder) labels(raw ast.Node, what string) map[string]string {
	es, ok := d.mapping(raw, what)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(es))
	for _, e := range es {
		n := d.resolve(e.val)
		s, ok := scalarText(n)
		if !ok {
			if _, null := n.(*ast.NullNode); !null && n != nil {
				d.errs.add(d.pos(orNode(n, e.val)), "", "%s: %s: want a string, got %s", what, e.key, typeName(n))
				continue
			}
		}
		out[e.key] = s
	}
	return out
}

func (d *decoder) bastion(raw ast.Node, what string) *Bastion {
	es, ok := d.mapping(raw, what)
	if !ok {
		return nil
	}
	b := &Bastion{}
	for _, e := range es {
		switch e.key {
		case "address", "user", "key":
			s, ok := d.str(e.val, what+": "+e.key)
			if !ok {
				continue
			}
			switch e.key {
			case "address":
				b.Address = s
			case "user":
				b.User = s
			case "key":
				b.Key = s
			}
		case "port":
			b.Port, _ = d.port(e.val, what+": port")
		default:
			d.errs.add(d.pos(e.keyNode), didYouMean(e.key, bastionKeys, "keys"), "unknown key %q in %s", e.key, what)
		}
	}
	if b.Address == "" {
		d.errs.add(d.pos(raw), "add address: HOST", "%s has no address", what)
		return nil
	}
	if b.User == "" {
		b.User = "root"
	}
	if b.Port == 0 {
		b.Port = 22
	}
	return b
}

// resolveHost applies the defaults to a host entry.
func resolveHost(s, def hostSpec) *Host {
	h := &Host{Address: *s.address, User: "root", Port: 22, Labels: map[string]string{}, Pos: s.pos}
	h.Name = h.Address
	if s.name != nil {
		h.Name = *s.name
	}
	pick := func(dst *string, own, fallback *string) {
		if own != nil {
			*dst = *own
		} else if fallback != nil {
			*dst = *fallback
		}
	}
	pick(&h.User, s.user, def.user)
	pick(&h.Key, s.key, def.key)
	pick(&h.KeyPassphraseEnv, s.keyPassphraseEnv, def.keyPassphraseEnv)
	pick(&h.PasswordEnv, s.passwordEnv, def.passwordEnv)
	pick(&h.PasswordFile, s.passwFile, def.passwFile)
	switch {
	case s.port != nil:
		h.Port = *s.port
	case def.port != nil:
		h.Port = *def.port
	}
	switch {
	case s.become != nil:
		h.Become = *s.become
	case def.become != nil:
		h.Become = *def.become
	}
	switch {
	case s.tty != nil:
		h.TTY = *s.tty
	case def.tty != nil:
		h.TTY = *def.tty
	}
	switch {
	case s.bastion != nil:
		b := *s.bastion
		h.Bastion = &b
	case def.bastion != nil:
		b := *def.bastion
		h.Bastion = &b
	}
	for _, m := range []map[string]string{def.labels, s.labels} {
		for k, v := range m {
			h.Labels[k] = v
		}
	}
	return h
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
