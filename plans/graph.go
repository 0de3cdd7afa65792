package plans

import (
	"sort"
	"strings"

	exprast "github.com/expr-lang/expr/ast"
)

// checkGraph checks `needs` (unknown ids, self needs, cycles) and that an
// expression reading steps.X names a step the reader (transitively) needs.
func (d *decoder) checkGraph(srcs []*stepSrc) {
	byID := map[string]*stepSrc{}
	var ids []string
	for _, src := range srcs {
		if src.s.ID != "" {
			if _, dup := byID[src.s.ID]; !dup {
				byID[src.s.ID] = src
				ids = append(ids, src.s.ID)
			}
		}
	}
	edgesOK := true
	for _, src := range srcs {
		if src.s.ID == "" {
			continue
		}
		for _, n := range src.needs {
			switch {
			case n.id == src.s.ID:
				d.errs.add(n.pos, "remove it from needs", "step %q needs itself", n.id)
				edgesOK = false
			case byID[n.id] == nil:
				d.errs.add(n.pos, didYouMean(n.id, ids, "steps"), "step %q needs unknown step %q", src.s.ID, n.id)
				edgesOK = false
			}
		}
	}
	if !edgesOK {
		return
	}
	if !d.checkCycles(srcs, byID) {
		return
	}
	d.checkReads(srcs, byID)
}

// checkCycles reports each cycle once, deterministically: steps are
// visited in file order and their needs in the order written; a cycle is
// reported at the needs entry of its step that comes first in the file.
func (d *decoder) checkCycles(srcs []*stepSrc, byID map[string]*stepSrc) bool {
	order := map[string]int{}
	for i, src := range srcs {
		if _, seen := order[src.s.ID]; !seen {
			order[src.s.ID] = i
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	ok := true
	var visit func(id string)
	visit = func(id string) {
		color[id] = grey
		stack = append(stack, id)
		for _, n := range byID[id].needs {
			switch color[n.id] {
			case white:
				visit(n.id)
			case grey:
				i := len(stack) - 1
				for stack[i] != n.id {
					i--
				}
				cycle := append([]string(nil), stack[i:]...)
				first := 0
				for k, c := range cycle {
					if order[c] < order[cycle[first]] {
						first = k
					}
				}
				cycle = append(cycle[first:], cycle[:first]...)
				// stack[k] needs stack[k+1], and the last needs the first.
				path := append(cycle, cycle[0])
				d.errs.add(byID[cycle[0]].s.needsPos[cycle[1]], "remove one of these needs", "cycle: %s", strings.Join(path, " -> "))
				ok = false
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	for _, src := range srcs {
		if src.s.ID != "" && color[src.s.ID] == white {
			visit(src.s.ID)
		}
	}
	return ok
}

// checkReads reports expressions that read steps.X where X is not a need.
func (d *decoder) checkReads(srcs []*stepSrc, byID map[string]*stepSrc) {
	memo := map[string]map[string]bool{}
	var upstream func(id string) map[string]bool
	upstream = func(id string) map[string]bool {
		if m, ok := memo[id]; ok {
			return m
		}
		m := map[string]bool{}
		memo[id] = m
		for _, n := range byID[id].needs {
			m[n.id] = true
			for k := range upstream(n.id) {
				m[k] = true
			}
		}
		return m
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, src := range srcs {
		if src.s.ID == "" {
			continue
		}
		up := upstream(src.s.ID)
		reported := map[string]bool{}
		read := map[string]bool{}
		for _, e := range src.exprs {
			reads, dynamic := stepReads(e)
			if dynamic {
				src.s.ReadsAny = true
			}
			for _, id := range hostsReads(e) {
				src.s.ReadsHosts = appendOnce(src.s.ReadsHosts, id)
			}
			for _, r := range reads {
				if !read[r.id] {
					read[r.id] = true
					src.s.Reads = append(src.s.Reads, r.id)
				}
				if reported[r.id] {
					continue
				}
				pos := d.offsetPos(e.node, e.off+r.off)
				switch {
				case r.id == src.s.ID:
					d.errs.add(pos, "a step sees only the outputs of the steps it needs", "step %s reads its own outputs", r.id)
				case byID[r.id] == nil:
					d.errs.add(pos, didYouMean(r.id, ids, "steps"), "step %s reads outputs of unknown step %q", src.s.ID, r.id)
				case !up[r.id]:
					d.errs.add(pos, "", "step %s reads outputs of %s but does not need it; add %s to needs", src.s.ID, r.id, r.id)
				default:
					continue
				}
				reported[r.id] = true
			}
		}
	}
}

type stepRead struct {
	id  string
	off int // rune offset in the expression
}

// stepReads lists the literal X of steps.X and steps["X"] in an
// expression; dynamic is true when `steps` is also used otherwise (e.g.
// steps[vars.x]), so any step may be read.
func stepReads(e expression) (reads []stepRead, dynamic bool) {
	if e.prog == nil {
		return nil, false
	}
	root := e.prog.Node()
	v := &readVisitor{}
	exprast.Walk(&root, v)
	sort.SliceStable(v.reads, func(i, j int) bool { return v.reads[i].off < v.reads[j].off })
	return v.reads, v.idents > len(v.reads)
}

// hostsReads lists the X of steps.X.hosts and steps["X"].hosts; "*" when
// the step is chosen dynamically (steps[vars.x].hosts).
func hostsReads(e expression) []string {
	if e.prog == nil {
		return nil
	}
	root := e.prog.Node()
	v := &hostsVisitor{}
	exprast.Walk(&root, v)
	return v.ids
}

type hostsVisitor struct{ ids []string }

func (v *hostsVisitor) Visit(node *exprast.Node) {
	m, ok := (*node).(*exprast.MemberNode)
	if !ok {
		return
	}
	if prop, ok := m.Property.(*exprast.StringNode); !ok || prop.Value != "hosts" {
		return
	}
	inner, ok := m.Node.(*exprast.MemberNode)
	if !ok {
		return
	}
	if id, ok := inner.Node.(*exprast.IdentifierNode); !ok || id.Value != "steps" {
		return
	}
	if step, ok := inner.Property.(*exprast.StringNode); ok {
		v.ids = appendOnce(v.ids, step.Value)
	} else {
		v.ids = appendOnce(v.ids, "*")
	}
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

type readVisitor struct {
	reads  []stepRead
	idents int // uses of the identifier `steps`
}

func (v *readVisitor) Visit(node *exprast.Node) {
	if id, ok := (*node).(*exprast.IdentifierNode); ok && id.Value == "steps" {
		v.idents++
	}
	m, ok := (*node).(*exprast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*exprast.IdentifierNode)
	if !ok || id.Value != "steps" {
		return
	}
	if prop, ok := m.Property.(*exprast.StringNode); ok {
		v.reads = append(v.reads, stepRead{id: prop.Value, off: id.Location().From})
	}
}
