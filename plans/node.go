package plans

import (
	"math"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
)

// decoder turns goccy/go-yaml nodes into values, recording problems with
// their positions.
type decoder struct {
	file    string
	errs    *collector
	anchors map[string]ast.Node
	budget  int // nodes left to convert; bounds alias expansion
}

// maxNodes bounds the work of converting one file (aliases can multiply it).
const maxNodes = 200000

// maxDepth bounds nesting (and recursive aliases).
const maxDepth = 64

func newDecoder(file string, errs *collector, root ast.Node) *decoder {
	d := &decoder{file: file, errs: errs, anchors: map[string]ast.Node{}, budget: maxNodes}
	if root != nil {
		ast.Walk(anchorCollector(d.anchors), root)
	}
	return d
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil && an.Value != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// pos returns the position of n's first token.
func (d *decoder) pos(n ast.Node) Position {
	p := Position{File: d.file}
	switch m := n.(type) {
	case nil:
		return p
	case *ast.MappingNode:
		if len(m.Values) > 0 && !m.IsFlowStyle {
			return d.pos(m.Values[0])
		}
		if m.Start != nil && m.Start.Position != nil {
			p.Line, p.Col = m.Start.Position.Line, m.Start.Position.Column
		}
		return p
	case *ast.MappingValueNode:
		if m.Key != nil {
			return d.pos(m.Key)
		}
	case *ast.SequenceNode:
		if m.Start != nil && m.Start.Position != nil {
			p.Line, p.Col = m.Start.Position.Line, m.Start.Position.Column
			return p
		}
	}
	tk := n.GetToken()
	if tk != nil && tk.Position != nil {
		p.Line, p.Col = tk.Position.Line, tk.Position.Column
		if p.Col < 1 {
			p.Col = 1
		}
	}
	return p
}

// resolve looks through anchors, tags and aliases to the node holding a value.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for i := 0; i < maxDepth; i++ {
		switch m := n.(type) {
		case *ast.AnchorNode:
			n = m.Value
		case *ast.TagNode:
			n = m.Value
		case *ast.AliasNode:
			if m.Value == nil {
				return nil
			}
			target, ok := d.anchors[m.Value.GetToken().Value]
			if !ok {
				return nil
			}
			n = target
		case *ast.MappingKeyNode:
			n = m.Value
		default:
			return n
		}
	}
	return nil
}

// typeName names the YAML type of n for error messages.
func typeName(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode, *ast.LiteralNode:
		return "string"
	case *ast.IntegerNode:
		return "integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "number"
	case *ast.BoolNode:
		return "boolean"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "map"
	case *ast.SequenceNode:
		return "list"
	}
	return "unsupported value"
}

// entry is one key: value of a mapping.
type entry struct {
	key     string
	keyNode ast.Node
	val     ast.Node // not resolved
}

// mapping returns the entries of n, or false (with an error naming what)
// when n is not a map. Duplicate keys are reported; merge keys (<<) are
// expanded, with the mapping's own keys winning.
func (d *decoder) mapping(n ast.Node, what string) ([]entry, bool) {
	return d.mappingDepth(n, what, 0)
}

func (d *decoder) mappingDepth(raw ast.Node, what string, depth int) ([]entry, bool) {
	n := d.resolve(raw)
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	case nil, *ast.NullNode:
		return nil, true
	default:
		d.errs.add(d.pos(orNode(n, raw)), "", "%s: want a map, got %s", what, typeName(n))
		return nil, false
	}
	if depth > maxDepth {
		d.errs.add(d.pos(raw), "", "%s: merge keys nested too deep", what)
		return nil, false
	}
	var merged, own []entry
	seen := map[string]ast.Node{}
	for _, mv := range values {
		if mv == nil || mv.Key == nil {
			continue
		}
		if mv.Key.IsMergeKey() {
			merged = append(merged, d.mergeEntries(mv.Value, what, depth)...)
			continue
		}
		kn := d.resolve(mv.Key)
		key, ok := scalarText(kn)
		if !ok {
			d.errs.add(d.pos(mv.Key), "", "%s: want a plain key, got %s", what, typeName(kn))
			continue
		}
		if first, dup := seen[key]; dup {
			d.errs.add(d.pos(mv.Key), "remove one of them", "%s: duplicate key %q (first at line %d)", what, key, d.pos(first).Line)
			continue
		}
		seen[key] = mv.Key
		own = append(own, entry{key: key, keyNode: mv.Key, val: mv.Value})
	}
	if len(merged) == 0 {
		return own, true
	}
	out := make([]entry, 0, len(merged)+len(own))
	for _, e := range merged {
		if _, over := seen[e.key]; over {
			continue
		}
		seen[e.key] = e.keyNode
		out = append(out, e)
	}
	return append(out, own...), true
}

func (d *decoder) mergeEntries(v ast.Node, what string, depth int) []entry {
	n := d.resolve(v)
	if seq, ok := n.(*ast.SequenceNode); ok {
		var out []entry
		for _, item := range seq.Values {
			es, _ := d.mappingDepth(item, what+": <<", depth+1)
			out = append(out, es...)
		}
		return out
	}
	es, _ := d.mappingDepth(v, what+": <<", depth+1)
	return es
}

func orNode(n, fallback ast.Node) ast.Node {
	if n == nil {
		return fallback
	}
	return n
}

// sequence returns the items of n (nil for null), or false when n is not a list.
func (d *decoder) sequence(raw ast.Node, what string) ([]ast.Node, bool) {
	n := d.resolve(raw)
	switch m := n.(type) {
	case *ast.SequenceNode:
		return m.Values, true
	case nil, *ast.NullNode:
		return nil, true
	}
	d.errs.add(d.pos(orNode(n, raw)), "", "%s: want a list, got %s", what, typeName(n))
	return nil, false
}

// scalarText returns the text of a scalar node as written (strings without
// quotes), and false for anything else.
func scalarText(n ast.Node) (string, bool) {
	switch m := n.(type) {
	case *ast.StringNode:
		return m.Value, true
	case *ast.LiteralNode:
		if m.Value == nil {
			return "", true
		}
		return m.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// str decodes a string value; ok is false (with an error) otherwise.
func (d *decoder) str(raw ast.Node, what string) (string, bool) {
	n := d.resolve(raw)
	switch m := n.(type) {
	case *ast.StringNode:
		return m.Value, true
	case *ast.LiteralNode:
		s, _ := scalarText(m)
		return s, true
	}
	d.errs.add(d.pos(orNode(n, raw)), "", "%s: want a string, got %s", what, typeName(n))
	return "", false
}

// integer decodes an integer value.
func (d *decoder) integer(raw ast.Node, what string) (int, bool) {
	n := d.resolve(raw)
	if m, ok := n.(*ast.IntegerNode); ok {
		if v, ok := intValue(m); ok {
			return v, true
		}
		d.errs.add(d.pos(n), "", "%s: integer out of range", what)
		return 0, false
	}
	d.errs.add(d.pos(orNode(n, raw)), "", "%s: want an integer, got %s", what, typeName(n))
	return 0, false
}

func intValue(m *ast.IntegerNode) (int, bool) {
	switch v := m.Value.(type) {
	case int64:
		return int(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int(v), true
		}
	case int:
		return v, true
	}
	return 0, false
}

// boolean decodes a boolean value.
func (d *decoder) boolean(raw ast.Node, what string) (bool, bool) {
	n := d.resolve(raw)
	if m, ok := n.(*ast.BoolNode); ok {
		return m.Value, true
	}
	d.errs.add(d.pos(orNode(n, raw)), "", "%s: want true or false, got %s", what, typeName(n))
	return false, false
}

// value converts n to plain Go values: string, int, float64, bool, nil,
// []any and map[string]any.
func (d *decoder) value(raw ast.Node, what string, depth int) (any, bool) {
	if !d.spend(raw, what, depth) {
		return nil, false
	}
	n := d.resolve(raw)
	switch m := n.(type) {
	case nil, *ast.NullNode:
		return nil, true
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(m)
		return s, true
	case *ast.IntegerNode:
		if v, ok := intValue(m); ok {
			return v, true
		}
		f, _ := m.Value.(uint64)
		return float64(f), true
	case *ast.FloatNode:
		return m.Value, true
	case *ast.InfinityNode:
		return m.Value, true
	case *ast.NanNode:
		return math.NaN(), true
	case *ast.BoolNode:
		return m.Value, true
	case *ast.SequenceNode:
		out := make([]any, 0, len(m.Values))
		ok := true
		for _, item := range m.Values {
			v, vok := d.value(item, what, depth+1)
			ok = ok && vok
			out = append(out, v)
		}
		return out, ok
	case *ast.MappingNode, *ast.MappingValueNode:
		es, ok := d.mappingDepth(m, what, depth)
		out := make(map[string]any, len(es))
		for _, e := range es {
			v, vok := d.value(e.val, what+"."+e.key, depth+1)
			ok = ok && vok
			out[e.key] = v
		}
		return out, ok
	}
	d.errs.add(d.pos(orNode(n, raw)), "", "%s: unsupported value %s", what, typeName(n))
	return nil, false
}

// spend takes one node from the budget; false (reported once) when the
// value is nested too deep or aliases expand it too far.
func (d *decoder) spend(raw ast.Node, what string, depth int) bool {
	if depth > maxDepth {
		d.errs.add(d.pos(raw), "", "%s: value nested too deep (recursive alias?)", what)
		return false
	}
	d.budget--
	if d.budget < 0 {
		if d.budget == -1 {
			d.errs.add(d.pos(raw), "", "%s: value too large (aliases expand to more than %d nodes)", what, maxNodes)
		}
		return false
	}
	return true
}

// offsetPos returns the position of the rune at offset off inside the
// string value of n, when the file text maps one to one onto the value;
// otherwise the position of n itself.
func (d *decoder) offsetPos(raw ast.Node, off int) Position {
	n := d.resolve(raw)
	base := d.pos(orNode(n, raw))
	switch m := n.(type) {
	case *ast.StringNode:
		tk := m.GetToken()
		if tk == nil || tk.Position == nil {
			return base
		}
		origin := strings.TrimSpace(tk.Origin)
		if strings.ContainsAny(m.Value, "\n") || strings.Contains(origin, "\n") {
			return base
		}
		shift := 0
		if origin != "" && (origin[0] == '\'' || origin[0] == '"') {
			shift = 1
			if strings.Contains(origin, `\`) || strings.Contains(origin[1:len(origin)-1], "''") {
				return base
			}
		}
		if utf8.RuneCountInString(m.Value) < off {
			return base
		}
		base.Col += shift + off
		return base
	case *ast.LiteralNode:
		if m.Value == nil || m.Start == nil || !strings.HasPrefix(m.Start.Value, "|") {
			return base
		}
		tk := m.Value.GetToken()
		if tk == nil || tk.Position == nil {
			return base
		}
		value := []rune(m.Value.Value)
		if off > len(value) {
			return base
		}
		line, col := 0, 0
		for _, r := range value[:off] {
			if r == '\n' {
				line++
				col = 0
			} else {
				col++
			}
		}
		indent := literalIndent(tk.Origin)
		if indent < 0 {
			return base
		}
		return Position{File: d.file, Line: tk.Position.Line + line, Col: indent + col + 1}
	}
	return base
}

// literalIndent returns the indentation of the first non-blank line of a
// block scalar's source, or -1 when it starts with blank lines.
func literalIndent(origin string) int {
	line, _, _ := strings.Cut(origin, "\n")
	if strings.TrimSpace(line) == "" {
		return -1
	}
	return len(line) - len(strings.TrimLeft(line, " "))
}
