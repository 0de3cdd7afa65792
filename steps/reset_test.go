package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// installed lays out what the other kinds leave on a host.
func (l *lab) installed(t *testing.T) (pkg, tarball string) {
	t.Helper()
	l.fake(t, "kubeadm", fakeKubeadm)
	l.fake(t, "systemctl", fakeSystemctl)
	root := filepath.Join(l.dir, "root")
	pkg = filepath.Join(root, "kube")
	tarball = filepath.Join(root, "kube.tgz")
	l.write(t, tarball, "tgz")
	l.write(t, filepath.Join(root, untarMarker), "sum\nkube\n")
	l.write(t, filepath.Join(pkg, "shell", "clean.sh"), `echo "$(pwd)" >>"$FAKE_DIR/clean.runs"`+"\n")
	l.write(t, filepath.Join(pkg, "bin", "kubelet"), "bin")
	l.write(t, l.paths.Bin, "#!/bin/sh\n"+fakeSealflow)
	if err := os.Chmod(l.paths.Bin, 0o755); err != nil {
		t.Fatal(err)
	}
	l.write(t, l.paths.Unit, "[Unit]\n")
	for _, f := range []string{
		filepath.Join(l.paths.Kube, "manifests", "kube-lvscare.yaml"),
		filepath.Join(l.paths.Kube, "admin.conf"),
		filepath.Join(l.paths.Etcd, "member", "wal"),
		filepath.Join(l.paths.Kubelet, "config.yaml"),
		filepath.Join(l.paths.State, "init-script", "x"),
		filepath.Join(l.home, ".kube", "config"),
	} {
		l.write(t, f, "x")
	}
	l.write(t, l.paths.Hosts, "127.0.0.1 localhost\n# BEGIN sealflow sealflow\n10.0.0.2 m0\n# END sealflow sealflow\n"+
		apiserverHosts("10.255.255.253")+"10.9.9.9 mine\n")
	return pkg, tarball
}

func TestReset(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	pkg, tarball := l.installed(t)
	s, err := newReset(Params{"package_dir": pkg, "files": []string{tarball}}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	for _, p := range []string{l.paths.Kube, l.paths.Etcd, l.paths.Kubelet, l.paths.State, l.paths.Bin, l.paths.Unit,
		filepath.Join(l.home, ".kube"), pkg, tarball, filepath.Join(l.dir, "root", untarMarker)} {
		if exists(p) {
			t.Errorf("%s is left behind", p)
		}
	}
	if got := l.read(t, "etc/hosts"); got != "127.0.0.1 localhost\n10.9.9.9 mine\n" {
		t.Errorf("/etc/hosts after reset:\n%s", got)
	}
	if d := cmp.Diff([]string{"reset -f"}, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	if got := l.read(t, "sealflow.1"); got != "lvscare\nclean\n--vs\n10.255.255.253:6443\n" {
		t.Errorf("sealflow arguments %q", got)
	}
	if got := l.read(t, "systemctl.calls"); got != "disable --now lvscare.service\ndaemon-reload\n" {
		t.Errorf("systemctl calls %q", got)
	}
	if got := l.read(t, "clean.runs"); got != filepath.Join(pkg, "shell")+"\n" {
		t.Errorf("clean.sh runs %q", got)
	}
	// Again on a clean host: nothing to do, no error.
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatalf("second reset: %v\nlog:\n%s", err, l.log.String())
	}
	l.noInjection(t)
}

func TestResetKeepsPackage(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	pkg, _ := l.installed(t)
	s, err := newReset(Params{"package_dir": pkg, "remove_package": false, "hosts_block": "other"}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	if !exists(filepath.Join(pkg, "bin", "kubelet")) || !exists(filepath.Join(l.dir, "root", untarMarker)) {
		t.Error("the package was removed with remove_package: false")
	}
	if got := l.read(t, "etc/hosts"); !strings.Contains(got, "# BEGIN sealflow sealflow\n") || strings.Contains(got, "apiserver") {
		t.Errorf("/etc/hosts: want the sealflow block kept (another hosts_block) and the apiserver block gone:\n%s", got)
	}
}

func TestResetFailureReported(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	pkg, _ := l.installed(t)
	l.write(t, filepath.Join(pkg, "shell", "clean.sh"), "exit 3\n")
	s, _ := newReset(Params{"package_dir": pkg}, l.paths)
	_, err := s.Run(context.Background(), l.target())
	if err == nil || !strings.Contains(l.log.String(), "clean.sh failed") {
		t.Errorf("error %v, log %q: want the failed clean.sh reported", err, l.log.String())
	}
	if exists(l.paths.Kube) || exists(pkg) {
		t.Error("reset stopped at the first failure")
	}
}

func TestResetParams(t *testing.T) {
	t.Parallel()
	for _, p := range []Params{
		{"package_dir": "/"}, {"package_dir": "kube"}, {"package_dir": "/root/kube\n/"},
		{"files": []string{"rel"}}, {"vip": hostile}, {"hosts_block": hostile}, {"port": 0x10000},
	} {
		if _, err := resetKind().New(p); err == nil {
			t.Errorf("New(%v) succeeded", p)
		}
	}
	if _, err := resetKind().New(Params{}); err != nil {
		t.Errorf("New with no params: %v", err)
	}
}
