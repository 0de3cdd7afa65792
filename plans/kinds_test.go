package plans

import (
	"context"
	"testing"

	"github.com/sealflow/sealflow/steps"
)

// testKinds returns the built-in kinds plus "typed", a kind whose
// parameters cover every type, so coercion can be tested.
func testKinds(t testing.TB) *steps.Registry {
	t.Helper()
	r := steps.Builtin()
	r.Register(&steps.Kind{
		Name: "typed",
		Params: []steps.Param{
			{Name: "count", Type: steps.Int, Required: true},
			{Name: "force", Type: steps.Bool},
			{Name: "wait", Type: steps.Duration},
			{Name: "names", Type: steps.StringList},
			{Name: "labels", Type: steps.StringMap},
			{Name: "note", Type: steps.String},
		},
		Secret: []string{"password"},
		New:    func(steps.Params) (steps.Step, error) { return nopStep{}, nil },
	})
	return r
}

type nopStep struct{}

func (nopStep) Run(context.Context, *steps.Target) (steps.Outputs, error) { return nil, nil }
