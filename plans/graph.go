package plans

import (
	"sort"
	"strings"

	exprast "github.com/expr-lang/expr/ast"

	"github.com/sealflow/sealflow/dag"
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
	g := dag.New[string]()
	for _, id := range ids {
		g.Add(id)
	}
	for _, id := range ids {
		for _, n := range byID[id].needs {
			g.Connect(n.id, id)
		}
	}
	if !d.checkCycles(g, byID) {
		return
	}
	d.checkReads(srcs, byID, ids, g)
}

// checkCycles reports each cycle the graph's search finds once (see
// dag.Graph.Cycles), deterministically: a cycle is written in the
// direction of needs ("a -> b": a needs b), starts at its step that comes
// first in the file, and is reported at that step's needs entry.
func (d *decoder) checkCycles(g *dag.Graph[string], byID map[string]*stepSrc) bool {
	order := map[string]int{}
	for i, id := range g.Nodes() {
		order[id] = i
	}
	cycles := g.Cycles()
	for _, c := range cycles {
		// dag's path runs from a need to the step that needs it and ends
		// where it starts: turn it around, without the repeated node.
		cycle := make([]string, 0, len(c))
		for i := len(c) - 1; i > 0; i-- {
			cycle = append(cycle, c[i])
		}
		first := 0
		for k, id := range cycle {
			if order[id] < order[cycle[first]] {
				first = k
			}
		}
		cycle = append(cycle[first:], cycle[:first]...)
		// cycle[k] needs cycle[k+1], and the last needs the first.
		path := append(cycle, cycle[0])
		d.errs.add(byID[cycle[0]].s.needsPos[cycle[1]], "remove one of these needs", "cycle: %s", strings.Join(path, " -> "))
	}
	return len(cycles) == 0
}

// checkReads reports expressions that read steps.X where X is not a need,
// and gives a step that reads `steps` dynamically its Upstream. A read of
// a step that is not a direct need is one search of the graph; the
// transitive needs are listed only for a dynamic reader: for every step
// of a long chain they would be quadratic in its length.
func (d *decoder) checkReads(srcs []*stepSrc, byID map[string]*stepSrc, ids []string, g *dag.Graph[string]) {
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	for _, src := range srcs {
		if src.s.ID == "" {
			continue
		}
		id := src.s.ID
		direct := map[string]bool{}
		for _, n := range byID[id].needs {
			direct[n.id] = true
		}
		needed := func(r string) bool { return direct[r] || g.DependsOn(id, r) }
		reported := map[string]bool{}
		read := map[string]bool{}
		for _, e := range src.exprs {
			reads, dynamic := stepReads(e)
			if dynamic {
				src.s.ReadsAny = true
			}
			for _, h := range hostsReads(e) {
				src.s.ReadsHosts = appendOnce(src.s.ReadsHosts, h)
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
				case r.id == id:
					d.errs.add(pos, "a step sees only the outputs of the steps it needs", "step %s reads its own outputs", r.id)
				case byID[r.id] == nil:
					d.errs.add(pos, didYouMean(r.id, sorted, "steps"), "step %s reads outputs of unknown step %q", id, r.id)
				case !needed(r.id):
					d.errs.add(pos, "", "step %s reads outputs of %s but does not need it; add %s to needs", id, r.id, r.id)
				default:
					continue
				}
				reported[r.id] = true
			}
		}
		if src.s.ReadsAny {
			src.s.Upstream = g.Ancestors(id)
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
