package plans

import (
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	exprast "github.com/expr-lang/expr/ast"
)

// outputFunc is the function a read of one output (X.outputs.KEY or
// X.outputs[KEY]) is compiled into: a missing output is an error naming
// the step and the outputs it has, never a silent "". `X.outputs?.KEY`,
// `X.outputs.KEY ?? default` and `"KEY" in X.outputs` read an output that
// may be missing.
const outputFunc = "_sealflow_output"

func outputOptions() []expr.Option {
	return []expr.Option{
		expr.Function(outputFunc, func(params ...any) (any, error) {
			outputs, _ := params[0].(map[string]string)
			key := fmt.Sprint(params[1])
			what, _ := params[2].(string)
			if v, ok := outputs[key]; ok {
				return v, nil
			}
			if strings.HasPrefix(what, "?") {
				return nil, nil // the left side of ??: the default applies
			}
			return nil, missingOutput(what, key, outputs)
		}, new(func(map[string]string, any, string) any)),
		expr.Patch(outputPatcher{}),
	}
}

func missingOutput(what, key string, outputs map[string]string) error {
	have := make([]string, 0, len(outputs))
	for k := range outputs {
		have = append(have, k)
	}
	sort.Strings(have)
	list := "it has none"
	if len(have) > 0 {
		list = "it has: " + strings.Join(have, ", ")
	}
	return fmt.Errorf("%s has no output %q (%s)", what, key, list)
}

type outputPatcher struct{}

func (outputPatcher) Visit(node *exprast.Node) {
	switch n := (*node).(type) {
	case *exprast.MemberNode:
		if n.Optional || n.Method {
			return
		}
		outs, ok := n.Node.(*exprast.MemberNode)
		if !ok {
			return
		}
		if p, ok := outs.Property.(*exprast.StringNode); !ok || p.Value != "outputs" {
			return
		}
		call := &exprast.CallNode{
			Callee:    &exprast.IdentifierNode{Value: outputFunc},
			Arguments: []exprast.Node{n.Node, n.Property, &exprast.StringNode{Value: outputsOwner(outs.Node)}},
		}
		exprast.Patch(node, call)
	case *exprast.BinaryNode:
		// X.outputs.KEY ?? default: a missing output takes the default.
		if n.Operator != "??" {
			return
		}
		if c, ok := n.Left.(*exprast.CallNode); ok && isOutputCall(c) {
			if w, ok := c.Arguments[2].(*exprast.StringNode); ok && !strings.HasPrefix(w.Value, "?") {
				c.Arguments[2] = &exprast.StringNode{Value: "?" + w.Value}
			}
		}
	}
}

func isOutputCall(c *exprast.CallNode) bool {
	id, ok := c.Callee.(*exprast.IdentifierNode)
	return ok && id.Value == outputFunc && len(c.Arguments) == 3
}

// outputsOwner names what holds the outputs read: `step X`, `step X on
// host H`, or the expression's text when they are computed.
func outputsOwner(n exprast.Node) string {
	if m, ok := n.(*exprast.MemberNode); ok {
		if id, ok := m.Node.(*exprast.IdentifierNode); ok && id.Value == "steps" {
			if s, ok := m.Property.(*exprast.StringNode); ok {
				return "step " + s.Value
			}
		}
		if hosts, ok := m.Node.(*exprast.MemberNode); ok {
			if p, ok := hosts.Property.(*exprast.StringNode); ok && p.Value == "hosts" {
				if h, ok := m.Property.(*exprast.StringNode); ok {
					return outputsOwner(hosts.Node) + " on host " + h.Value
				}
			}
		}
	}
	return n.String()
}
