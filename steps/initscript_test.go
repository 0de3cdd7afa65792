package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// initSh records each run: its working directory and $GREETING.
const initSh = `echo "$(pwd) $GREETING" >>"$FAKE_DIR/init.runs"
`

func (l *lab) runs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "init.runs"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestInitScript(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	tarball := filepath.Join(l.dir, "root", "kube.tgz")
	kubePackage(t, tarball, initSh)
	root := filepath.Join(l.dir, "root")
	u, _ := untarKind().New(Params{"src": tarball, "dest": root})
	if _, err := u.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(root, "kube")
	newStep := func(env map[string]string) *initScript {
		s, err := newInitScript(Params{"dir": pkg, "env": env}, l.paths)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newStep(map[string]string{"GREETING": hostile})
	if done, _, err := s.Done(ctx, l.target()); err != nil || done {
		t.Fatalf("Done before = %v, %v", done, err)
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	want := filepath.Join(pkg, "shell") + " " + hostile
	if got := l.runs(t); len(got) != 1 || got[0] != want {
		t.Errorf("runs %q, want [%q]", got, want)
	}
	if !strings.HasPrefix(s.marker(), filepath.Join(l.paths.State, "init-script")+"/") || !exists(s.marker()) {
		t.Errorf("marker %s missing or misplaced", s.marker())
	}
	if done, _, err := s.Done(ctx, l.target()); err != nil || !done {
		t.Errorf("Done after = %v, %v", done, err)
	}
	// Another env: not done.
	if done, _, _ := newStep(map[string]string{"GREETING": "hi"}).Done(ctx, l.target()); done {
		t.Error("Done with another env = true")
	}
	// Another package (a new tarball extracted): not done.
	kubePackage(t, tarball, initSh+"# v2\n")
	if _, err := u.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	if done, _, _ := s.Done(ctx, l.target()); done {
		t.Error("Done after a new package = true")
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	if done, _, _ := s.Done(ctx, l.target()); !done {
		t.Error("Done after the second run = false")
	}
	// The script changed in place: not done.
	l.write(t, filepath.Join(pkg, "shell", "init.sh"), initSh+"# edited\n")
	if done, _, _ := s.Done(ctx, l.target()); done {
		t.Error("Done after the script changed = true")
	}
	l.noInjection(t)
}

func TestInitScriptFails(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	pkg := filepath.Join(l.dir, "kube")
	l.write(t, filepath.Join(pkg, "shell", "init.sh"), "echo half\nexit 7\n")
	s, err := newInitScript(Params{"dir": pkg}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, l.target()); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("error %v, want the script's exit status 7", err)
	}
	if done, _, _ := s.Done(ctx, l.target()); done {
		t.Error("Done after a failed run = true")
	}
	s2, _ := newInitScript(Params{"dir": pkg, "script": "shell/none.sh"}, l.paths)
	if _, err := s2.Run(ctx, l.target()); err == nil || !strings.Contains(l.log.String(), "no such file") {
		t.Errorf("missing script: %v", err)
	}
	for _, p := range []Params{{"dir": "kube"}, {"dir": "/"}, {"dir": "/k", "env": map[string]string{"A B": "x"}}, {"dir": "/k", "env": map[string]string{"SF_DIR": "x"}}} {
		if _, err := initScriptKind().New(p); err == nil {
			t.Errorf("New(%v) succeeded", p)
		}
	}
}

// A script that is not executable runs with the interpreter of its #!
// line (packages are often packed without the x bit).
func TestInitScriptShebang(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Skip("no /bin/bash to run a #!/bin/bash script with")
	}
	l := newLab(t)
	pkg := filepath.Join(l.dir, "kube")
	l.write(t, filepath.Join(pkg, "shell", "init.sh"), "#!/bin/bash\necho \"${BASH_VERSION:+bash} $(pwd)\" >\"$FAKE_DIR/init.runs\"\n")
	s, err := newInitScript(Params{"dir": pkg}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	if got := l.runs(t); len(got) != 1 || got[0] != "bash "+filepath.Join(pkg, "shell") {
		t.Errorf("runs %q", got)
	}
}
