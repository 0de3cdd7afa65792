package steps

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/redact"
	"github.com/sealflow/sealflow/steps/steptest"
)

// Helpers shared by the tests of the Kubernetes kinds: scripts run for
// real with this machine's sh (steptest.Local), with every host path in a
// temporary directory and stand-in kubeadm, kubectl, systemctl and
// sealflow programs first on PATH.

// hostile is a value that breaks any shell command it is pasted into
// unquoted or double-quoted.
const hostile = `it's "$(touch PWNED)" ` + "`touch PWNED2`" + ` $HOME;x`

type lab struct {
	dir   string
	paths sysPaths
	bin   string // stand-in programs
	home  string
	conn  *steptest.Conn
	log   *taskLog
}

// taskLog is a task's log as the engine keeps it: the values a step gives
// to Target.Secret are hidden.
type taskLog struct {
	secrets redact.Set
	buf     syncBuffer
	w       *redact.Writer
}

func newTaskLog() *taskLog {
	l := &taskLog{}
	l.w = redact.NewWriter(&l.buf, &l.secrets)
	return l
}

func (l *taskLog) Write(p []byte) (int, error) { return l.w.Write(p) }

// String returns the log so far, an unfinished last line included.
func (l *taskLog) String() string {
	l.w.Flush()
	return l.buf.String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLab(t *testing.T) *lab {
	t.Helper()
	// Every path has a hostile directory name in it: a script that
	// pastes a path unquoted runs commands.
	dir := filepath.Join(t.TempDir(), hostile)
	l := &lab{
		dir: dir,
		paths: sysPaths{
			Hosts:   filepath.Join(dir, "etc", "hosts"),
			Kube:    filepath.Join(dir, "etc", "kubernetes"),
			State:   filepath.Join(dir, "var", "lib", "sealflow"),
			Bin:     filepath.Join(dir, "usr", "local", "bin", "sealflow"),
			Unit:    filepath.Join(dir, "etc", "systemd", "system", "lvscare.service"),
			Etcd:    filepath.Join(dir, "var", "lib", "etcd"),
			Kubelet: filepath.Join(dir, "var", "lib", "kubelet"),
		},
		bin:  filepath.Join(dir, "fakebin"),
		home: filepath.Join(dir, "home"),
		conn: steptest.New(steptest.Local),
		log:  newTaskLog(),
	}
	for _, d := range []string{filepath.Join(dir, "etc"), l.bin, l.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func (l *lab) target() *Target {
	return &Target{
		Host:    Host{Name: "node-1", Address: "192.0.2.10"},
		Conn:    l.conn,
		Log:     l.log,
		Secrets: &l.log.secrets,
		Env: map[string]string{
			"HOME":       l.home,
			"PATH":       l.bin + ":" + os.Getenv("PATH"),
			"FAKE_DIR":   l.dir,
			"FAKE_KUBE":  l.paths.Kube,
			"FAKE_HOSTS": l.paths.Hosts,
			"TMPDIR":     l.dir,
		},
	}
}

// fake installs a stand-in program called name.
func (l *lab) fake(t *testing.T, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.bin, name), []byte("#!/bin/sh\nset -e\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (l *lab) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (l *lab) write(t *testing.T, file, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// noInjection fails when a hostile value was run as a command.
func (l *lab) noInjection(t *testing.T) {
	t.Helper()
	for _, d := range []string{l.dir, filepath.Dir(l.dir), l.home, "."} {
		for _, f := range []string{"PWNED", "PWNED2"} {
			if exists(filepath.Join(d, f)) {
				t.Errorf("a hostile parameter was run by the shell: %s exists", filepath.Join(d, f))
			}
		}
	}
}

// noSecrets fails when a secret appears in a command's text or the log.
func (l *lab) noSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			t.Fatal("empty secret")
		}
		for i, c := range l.conn.Commands() {
			if strings.Contains(c.Script, s) {
				t.Errorf("command %d has a secret in its text:\n%s", i, c.Script)
			}
		}
		if strings.Contains(l.log.String(), s) {
			t.Errorf("the task log has a secret:\n%s", l.log.String())
		}
	}
}

func TestHostsParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		params  Params
		wantErr string
	}{
		{"map", Params{"entries": map[string]string{"m0": "10.0.0.2"}}, ""},
		{"list", Params{"entries": []string{"10.0.0.2 m0 m0.local"}}, ""},
		{"lines", Params{"lines": []string{"10.0.0.2 m0"}}, ""},
		{"absent without entries", Params{"state": "absent"}, ""},
		{"nothing", Params{}, "entries: no entries"},
		{"bad state", Params{"state": "gone", "lines": []string{"10.0.0.2 a"}}, `state: "gone"`},
		{"bad address", Params{"entries": map[string]string{"m0": "ten"}}, `"ten" is not an IP address`},
		{"name with space", Params{"entries": map[string]string{"m 0": "10.0.0.2"}}, `white space`},
		{"hostile name", Params{"lines": []string{"10.0.0.2 " + hostile}}, `is not a host name`},
		{"newline", Params{"lines": []string{"10.0.0.2 a\n10.0.0.3 b"}}, `on one line`},
		{"no name", Params{"lines": []string{"10.0.0.2"}}, `at least one host name`},
		{"bad block", Params{"block": "a b", "lines": []string{"10.0.0.2 a"}}, `block: "a b"`},
		{"relative file", Params{"file": "hosts", "lines": []string{"10.0.0.2 a"}}, `file: "hosts" is not an absolute`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := hostsKind().New(tt.params)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	got := ""
	if err != nil {
		got = err.Error()
	}
	if want == "" && err != nil || want != "" && !strings.Contains(got, want) {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestHostsBlock(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	// The file lives in a directory whose name would run commands if it
	// were pasted into a script.
	file := filepath.Join(l.dir, hostile, "hosts")
	const before = "127.0.0.1 localhost\n# a comment\n10.9.9.9 other"
	l.write(t, file, before)
	tg := l.target()
	newStep := func(p Params) Step {
		t.Helper()
		p["file"] = file
		s, err := hostsKind().New(p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newStep(Params{"entries": map[string]string{"m1": "10.0.0.3", "m0": "10.0.0.2"}, "lines": []string{"10.0.0.2 m0", "10.0.0.9 x y"}})
	done, _, err := s.(Checker).Done(ctx, tg)
	if err != nil || done {
		t.Fatalf("Done before Run = %v, %v; want false", done, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.Run(ctx, tg); err != nil {
			t.Fatal(err)
		}
	}
	want := "127.0.0.1 localhost\n# a comment\n10.9.9.9 other\n" +
		"# BEGIN sealflow sealflow\n10.0.0.2 m0\n10.0.0.3 m1\n10.0.0.9 x y\n# END sealflow sealflow\n"
	got, _ := os.ReadFile(file)
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("hosts after two runs (-want +got):\n%s", d)
	}
	if done, _, err := s.(Checker).Done(ctx, tg); err != nil || !done {
		t.Errorf("Done after Run = %v, %v; want true", done, err)
	}

	// Other entries: the block is replaced in place of the old one's
	// content, a second block is kept apart.
	s2 := newStep(Params{"entries": map[string]string{"m0": "10.0.0.4"}})
	if done, _, _ := s2.(Checker).Done(ctx, tg); done {
		t.Error("Done with other entries = true")
	}
	if _, err := s2.Run(ctx, tg); err != nil {
		t.Fatal(err)
	}
	other := newStep(Params{"block": "extra", "lines": []string{"10.1.1.1 e"}})
	if _, err := other.Run(ctx, tg); err != nil {
		t.Fatal(err)
	}
	want = "127.0.0.1 localhost\n# a comment\n10.9.9.9 other\n" +
		"# BEGIN sealflow sealflow\n10.0.0.4 m0\n# END sealflow sealflow\n" +
		"# BEGIN sealflow extra\n10.1.1.1 e\n# END sealflow extra\n"
	got, _ = os.ReadFile(file)
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("hosts after new entries (-want +got):\n%s", d)
	}

	// state: absent removes only its block.
	rm := newStep(Params{"state": "absent"})
	if done, _, _ := rm.(Checker).Done(ctx, tg); done {
		t.Error("Done of absent with the block there = true")
	}
	if _, err := rm.Run(ctx, tg); err != nil {
		t.Fatal(err)
	}
	want = "127.0.0.1 localhost\n# a comment\n10.9.9.9 other\n# BEGIN sealflow extra\n10.1.1.1 e\n# END sealflow extra\n"
	got, _ = os.ReadFile(file)
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("hosts after state absent (-want +got):\n%s", d)
	}
	if done, _, err := rm.(Checker).Done(ctx, tg); err != nil || !done {
		t.Errorf("Done of absent after Run = %v, %v; want true", done, err)
	}
	l.noInjection(t)
}

func TestHostsBrokenBlock(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	const broken = "127.0.0.1 localhost\n# BEGIN sealflow sealflow\n10.0.0.2 m0\n10.9.9.9 keep-me\n"
	l.write(t, l.paths.Hosts, broken)
	s, err := hostsKind().New(Params{"file": l.paths.Hosts, "lines": []string{"10.0.0.2 m0"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Run(context.Background(), l.target())
	if err == nil {
		t.Fatal("Run on a block without its END line succeeded")
	}
	if !strings.Contains(l.log.String(), "fix the file by hand") {
		t.Errorf("log does not say what to do:\n%s", l.log.String())
	}
	if got := l.read(t, "etc/hosts"); got != broken {
		t.Errorf("the file was changed to:\n%s", got)
	}
}

// kubeKinds are the kinds of this package's Kubernetes steps, as
// Builtin registers them.
func kubeKinds() []*Kind {
	return []*Kind{distributeKind(), untarKind(), initScriptKind(), hostsKind(), kubeadmInitKind(), joinCredentialsKind(), joinKind(), lvscareKind(), resetKind()}
}

func TestKubeKindsDeclared(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	for _, k := range kubeKinds() {
		r.Register(k)
		if k.Doc == "" || k.New == nil {
			t.Errorf("%s: no Doc or New", k.Name)
		}
		seen := map[string]bool{}
		for _, p := range k.Params {
			if seen[p.Name] || p.Doc == "" {
				t.Errorf("%s: parameter %q repeated or undocumented", k.Name, p.Name)
			}
			seen[p.Name] = true
		}
	}
	want := []string{"distribute", "hosts", "init-script", "join", "join-credentials", "kubeadm-init", "lvscare", "reset", "untar"}
	if d := cmp.Diff(want, r.Names()); d != "" {
		t.Errorf("kinds (-want +got):\n%s", d)
	}
	k, _ := r.Lookup("kubeadm-init")
	if d := cmp.Diff([]string{"token", "certificate_key"}, k.Secret); d != "" {
		t.Errorf("kubeadm-init secret outputs (-want +got):\n%s", d)
	}
	// Every step is safe to run again after an interruption.
	steps := map[string]Params{
		"distribute":       {"src": "/a", "dest": "/b"},
		"untar":            {"src": "/a.tgz", "dest": "/b"},
		"init-script":      {"dir": "/root/kube"},
		"hosts":            {"lines": []string{"10.0.0.2 m0"}},
		"kubeadm-init":     {"version": "v1.29.3", "masters": []string{"10.0.0.2"}},
		"join":             joinParamsFor("node", "v1.29.3"),
		"join-credentials": {"version": "v1.29.3"},
		"lvscare":          {"masters": []string{"10.0.0.2"}},
		"reset":            {},
	}
	for name, p := range steps {
		k, _ := r.Lookup(name)
		s, err := k.New(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !SafeToRerun(k, s) {
			t.Errorf("%s: not safe to run again", name)
		}
		if d, ok := s.(Describer); !ok || len(d.Describe(&Target{})) == 0 {
			t.Errorf("%s: no description", name)
		}
	}
}

// The hosts file is replaced by a rename of a complete new file: the old
// file's content is never truncated, a backup holds it, the mode stays,
// nothing else is left next to it.
func TestHostsWriteRenamesAndKeepsBackup(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	dir := filepath.Join(l.dir, "etc")
	file := filepath.Join(dir, "hosts")
	const before = "127.0.0.1 localhost\n"
	l.write(t, file, before)
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	s, err := hostsKind().New(Params{"file": file, "lines": []string{"10.0.0.2 m0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(old); string(b) != before {
		t.Errorf("the old file was rewritten in place: it now holds %q", b)
	}
	got, _ := os.ReadFile(file)
	if want := before + "# BEGIN sealflow sealflow\n10.0.0.2 m0\n# END sealflow sealflow\n"; string(got) != want {
		t.Errorf("hosts file:\n%s\nwant:\n%s", got, want)
	}
	if b, _ := os.ReadFile(file + ".sealflow-backup"); string(b) != before {
		t.Errorf("backup holds %q, want the previous content", b)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the previous 0640", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("files next to hosts: %v, want hosts and its backup", ents)
	}
}

// A hosts file that is a mount point (Docker's, the lab's) is written in
// place, so the mount's source gets the content.
func TestHostsWriteOnMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind mount a file")
	}
	l := newLab(t)
	ctx := context.Background()
	src := filepath.Join(l.dir, "source-hosts")
	file := filepath.Join(l.dir, "etc", "hosts")
	l.write(t, src, "127.0.0.1 localhost\n")
	l.write(t, file, "")
	if err := syscall.Mount(src, file, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(file, syscall.MNT_DETACH) })
	s, err := hostsKind().New(Params{"file": file, "lines": []string{"10.0.0.2 m0"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(src)
	if !strings.Contains(string(got), "10.0.0.2 m0") {
		t.Errorf("the mount's source holds %q, want the block", got)
	}
	if b, _ := os.ReadFile(file + ".sealflow-backup"); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("backup holds %q", b)
	}
}
