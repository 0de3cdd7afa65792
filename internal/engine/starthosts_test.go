package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// The hosts a caller connects to ahead of the run are those of the tasks
// the run starts at once, and no others: a host that only a later step
// reaches may not be up yet.
func TestStartHosts(t *testing.T) {
	t.Parallel()
	const src = `
name: start
hosts:
  groups:
    web: [{name: w1, address: 10.0.0.1}, {name: w2, address: 10.0.0.2}]
    db: [{name: d1, address: 10.0.0.3}]
    late: [{name: l1, address: 10.0.0.4}]
    cond: [{name: c1, address: 10.0.0.5}]
steps:
  - {id: a, kind: shell, on: web, with: {run: 'true'}}
  - {id: b, kind: shell, on: db, with: {run: 'true'}}
  - {id: c, kind: shell, on: late, needs: [a], with: {run: 'true'}}
  - {id: d, kind: shell, on: cond, when: 'vars.x == "1"', with: {run: 'true'}}
vars: {x: "0"}
`
	p, err := plans.Load("start.yaml", []byte(src), plans.LoadOptions{Kinds: steps.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	done := []journal.Record{
		{Event: journal.RunStarted, Run: 1},
		{Event: journal.Started, Run: 1, Step: "a", Host: "w1"},
		{Event: journal.Done, Run: 1, Step: "a", Host: "w1"},
	}
	tests := []struct {
		name    string
		opts    Options
		records []journal.Record
		want    []string
	}{
		{name: "fresh", want: []string{"w1", "w2", "d1"}},
		{name: "parallel bounds them", opts: Options{Parallel: 2}, want: []string{"w1", "w2"}},
		{name: "limit", opts: Options{Limit: []string{"db", "late"}}, want: []string{"d1"}},
		{name: "limit names nothing", opts: Options{Limit: []string{"nope"}}, want: nil},
		{name: "done in the journal", records: done, want: []string{"w2", "d1"}},
		{name: "skipped", opts: Options{Skip: []TaskID{{"a", "w1"}}}, want: []string{"w2", "d1"}},
	}
	for _, tt := range tests {
		opts := tt.opts
		opts.Plan = p
		var got []string
		for _, h := range StartHosts(opts, tt.records) {
			got = append(got, h.Name)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: StartHosts (-want +got):\n%s", tt.name, diff)
		}
	}
}
