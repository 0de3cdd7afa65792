package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// The content of a file a task reads from this machine is part of its
// fingerprint: an edited file is copied again on the next run, and what
// depends on it runs again; the same content is unchanged; a file gone
// since its copy was done does not undo it (a resume needs no file it
// sent).
func TestLocalFileContentInFingerprint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dest := filepath.Join(dir, "src"), filepath.Join(dir, "dest")
	text := strings.ReplaceAll(`
name: t
hosts: {groups: {g: [{name: h, address: local}]}}
steps:
  - {id: cp, kind: copy, with: {src: ${DIR}/src, dest: ${DIR}/dest}}
  - {id: use, kind: shell, needs: [cp], with: {run: 'cat ${DIR}/dest >> ${DIR}/used'}}
`, "${DIR}", dir)
	p, err := plans.Load("test.yaml", []byte(text), plans.LoadOptions{Kinds: steps.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	run := func(what string, want map[string]Status) {
		t.Helper()
		if diff := cmp.Diff(want, runLocal(t, p, filepath.Join(dir, "state"))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(src, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ran := map[string]Status{"cp@h": StatusDone, "use@h": StatusDone}
	same := map[string]Status{"cp@h": StatusCached, "use@h": StatusCached}

	write("one\n")
	run("first run", ran)
	run("nothing changed", same)
	write("second\n")
	run("src edited", ran)
	if b, _ := os.ReadFile(dest); string(b) != "second\n" {
		t.Errorf("after src was edited, dest holds %q, want the new content", b)
	}
	write("second\n") // a new mtime, the same content
	run("src written again with the same content", same)
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	run("src removed after its copy", same)
	if b, _ := os.ReadFile(filepath.Join(dir, "used")); string(b) != "one\nsecond\n" {
		t.Errorf("the step after the copy read %q, want one run per content", b)
	}
}
