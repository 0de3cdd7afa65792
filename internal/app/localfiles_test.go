package app

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

func TestCheckLocalFiles(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "kube.tar.gz")
	plan := `name: p
vars: {pkg: ` + missing + `, push: true}
hosts: {groups: {g: [{name: h1, address: local}, {name: h2, address: local}]}}
steps:
  - {id: up, kind: distribute, when: vars.push, with: {src: '${{ vars.pkg }}', dest: /tmp/kube.tar.gz}}
`
	load := func(set map[string]string) *plans.Plan {
		p, err := plans.Load("p.yaml", []byte(plan), plans.LoadOptions{Kinds: steps.Builtin(), Set: set})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	err := checkLocalFiles(load(nil), nil)
	if err == nil || Code(err) != ExitInvalid || !strings.Contains(err.Error(), `p.yaml:5:5: step "up": with.src: `+missing+" is not on this machine") {
		t.Errorf("missing package: %v", err)
	}
	// Skipped by its when: nothing to read.
	if err := checkLocalFiles(load(map[string]string{"push": "false"}), nil); err != nil {
		t.Errorf("a skipped step: %v", err)
	}
	// A resume after the upload was done everywhere needs no package.
	done := []journal.Record{{Event: journal.Done, Step: "up", Host: "h1"}, {Event: journal.Done, Step: "up", Host: "h2"}}
	if err := checkLocalFiles(load(nil), done); err != nil {
		t.Errorf("uploads done: %v", err)
	}
	if err := checkLocalFiles(load(nil), done[:1]); err == nil || !strings.Contains(err.Error(), "to send it to h2") {
		t.Errorf("h2's upload not done: %v", err)
	}
}
