package steps

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// fakeSealflow records its arguments, one a line, in sealflow.N.
const fakeSealflow = `n=$(cat "$FAKE_DIR/sealflow.n" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$FAKE_DIR/sealflow.n"
printf '%s\n' "$@" >"$FAKE_DIR/sealflow.$n"
`

// fakeSystemctl records its calls; is-active answers from a file.
const fakeSystemctl = `echo "$*" >>"$FAKE_DIR/systemctl.calls"
if [ "$1" = is-active ]; then [ -f "$FAKE_DIR/active" ]; fi
if [ "$1" = start ] || [ "$1" = restart ]; then : >"$FAKE_DIR/active"; fi
`

func (l *lab) sealflowBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sealflow")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+fakeSealflow), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func (l *lab) lvscareStep(t *testing.T, p Params) *lvscareStep {
	t.Helper()
	s, err := newLvscare(p, l.paths, &FileSums{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLvscareRules(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bin := l.sealflowBinary(t)
	s := l.lvscareStep(t, Params{
		"phase": "rules", "binary": bin, "masters": []string{"10.0.0.2", "10.0.0.3:6444"},
		"health_path": "/" + hostile,
	})
	if Checks(s) {
		t.Error("the rules phase says it can check itself; it is simply run again")
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := s.Run(ctx, l.target()); err != nil {
			t.Fatalf("%v\nlog:\n%s", err, l.log.String())
		}
	}
	want := "lvscare\ncare\n--vs\n10.255.255.253:6443\n--rs\n10.0.0.2:6443\n--rs\n10.0.0.3:6444\n--health-path\n/" + hostile + "\n--run-once\n"
	for _, n := range []string{"sealflow.1", "sealflow.2"} {
		if d := cmp.Diff(want, l.read(t, n)); d != "" {
			t.Errorf("%s: arguments (-want +got):\n%s", n, d)
		}
	}
	ups := l.conn.Uploads()
	if len(ups) != 2 || ups[0].Dst != l.paths.Bin || ups[0].Mode != 0o755 || ups[0].Skipped || !ups[1].Skipped {
		t.Errorf("uploads %+v, want the binary sent once with mode 0755, then skipped", ups)
	}
	if exists(filepath.Join(l.dir, "active")) || exists(l.target().Env["FAKE_KUBE"]) {
		t.Error("the rules phase installed something")
	}
	l.noInjection(t)
}

func TestLvscareStaticPod(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ctx := context.Background()
	p := Params{"phase": "install", "masters": []string{"10.0.0.2", "10.0.0.3"}, "image": "registry.local/sealflow:v1"}
	s := l.lvscareStep(t, p)
	if !Checks(s) {
		t.Fatal("the install phase cannot check itself")
	}
	if done, _, err := s.Done(ctx, l.target()); err != nil || done {
		t.Fatalf("Done before = %v, %v", done, err)
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	o := podspec.DefaultOptions()
	o.VS = netip.MustParseAddrPort("10.255.255.253:6443")
	o.RS = []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:6443"), netip.MustParseAddrPort("10.0.0.3:6443")}
	want, err := podspec.StaticPod(podspec.PodOptions{Image: "registry.local/sealflow:v1", Care: o})
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(l.paths.Kube, "manifests", "kube-lvscare.yaml")
	got, _ := os.ReadFile(manifest)
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("manifest (-want +got):\n%s", d)
	}
	if done, _, err := s.Done(ctx, l.target()); err != nil || !done {
		t.Errorf("Done after = %v, %v", done, err)
	}
	if len(l.conn.Uploads()) != 1 {
		t.Errorf("uploads %+v: no binary is needed for the static pod", l.conn.Uploads())
	}
	// The master set changed: not done, the manifest is rewritten.
	p["masters"] = []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"}
	s2 := l.lvscareStep(t, p)
	if done, _, _ := s2.Done(ctx, l.target()); done {
		t.Error("Done with another master set = true")
	}
	if _, err := s2.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(manifest); !strings.Contains(string(got), "10.0.0.4:6443") {
		t.Errorf("manifest not rewritten:\n%s", got)
	}
}

func TestLvscareSystemd(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.fake(t, "systemctl", fakeSystemctl)
	bin := l.sealflowBinary(t)
	ctx := context.Background()
	s := l.lvscareStep(t, Params{"mode": "systemd", "binary": bin, "masters": []string{"10.0.0.2"}})
	if Checks(s) {
		t.Error("phase both says it can check itself")
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	o := podspec.DefaultOptions()
	o.VS = netip.MustParseAddrPort("10.255.255.253:6443")
	o.RS = []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:6443")}
	wantUnit, err := podspec.SystemdUnit(podspec.UnitOptions{Binary: l.paths.Bin, Care: o})
	if err != nil {
		t.Fatal(err)
	}
	unit, _ := os.ReadFile(l.paths.Unit)
	if d := cmp.Diff(wantUnit, string(unit)); d != "" {
		t.Errorf("unit (-want +got):\n%s", d)
	}
	// Unchanged unit: started, not restarted.
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatal(err)
	}
	want := "daemon-reload\nenable lvscare.service\nrestart lvscare.service\n" +
		"daemon-reload\nenable lvscare.service\nstart lvscare.service\n"
	if d := cmp.Diff(want, l.read(t, "systemctl.calls")); d != "" {
		t.Errorf("systemctl calls (-want +got):\n%s", d)
	}
	inst := l.lvscareStep(t, Params{"mode": "systemd", "phase": "install", "binary": bin, "masters": []string{"10.0.0.2"}})
	if done, _, err := inst.Done(ctx, l.target()); err != nil || !done {
		t.Errorf("Done of the installed unit = %v, %v", done, err)
	}
	os.Remove(filepath.Join(l.dir, "active"))
	if done, _, _ := inst.Done(ctx, l.target()); done {
		t.Error("Done with the unit inactive = true")
	}
	if args := l.read(t, "sealflow.1"); !strings.Contains(args, "--run-once") {
		t.Errorf("rules were not programmed once: %q", args)
	}
}

func TestLvscareParams(t *testing.T) {
	t.Parallel()
	ok := func() Params { return Params{"masters": []string{"10.0.0.2"}} }
	tests := []struct {
		name string
		k, v string
		list []string
		port int
		want string
	}{
		{name: "ok"},
		{name: "phase", k: "phase", v: "all", want: "phase:"},
		{name: "mode", k: "mode", v: "docker", want: "mode:"},
		{name: "vip", k: "vip", v: hostile, want: "vip:"},
		{name: "scheme", k: "health_schem", v: "ftp", want: "health-schem"},
		{name: "path", k: "health_path", v: "healthz", want: "health-path"},
		{name: "image", k: "image", v: "a b", want: "image"},
		{name: "master", list: []string{"10.0.0.2", hostile}, want: "masters:"},
		{name: "duplicate master", list: []string{"10.0.0.2", "10.0.0.2:6443"}, want: "10.0.0.2:6443"},
		{name: "port", port: 70000, want: "port:"},
	}
	for _, tt := range tests {
		p := ok()
		if tt.k != "" {
			p[tt.k] = tt.v
		}
		if tt.list != nil {
			p["masters"] = tt.list
		}
		if tt.port != 0 {
			p["port"] = tt.port
		}
		_, err := lvscareKind().New(p)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := lvscareKind().New(Params{}); err == nil {
		t.Error("no masters accepted")
	}
}
