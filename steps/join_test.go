package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/redact"
)

func joinParamsFor(role, version string) Params {
	p := Params{
		"role": role, "version": version, "token": testToken, "ca_cert_hash": testHash,
		"skip_phases": []string{"preflight"},
	}
	if role == "master" {
		p["certificate_key"] = testKey
		p["master_address"] = "10.0.0.2"
	}
	return p
}

func (l *lab) joinStep(t *testing.T, p Params) *join {
	t.Helper()
	s, err := newJoin(p, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apiserverHosts(addr string) string {
	return "# BEGIN sealflow sealflow-apiserver\n" + addr + " apiserver.cluster.local\n# END sealflow sealflow-apiserver\n"
}

func TestJoinMaster(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	s := l.joinStep(t, joinParamsFor("master", "v1.34.4"))
	tg := l.target()
	tg.Host = Host{Name: "master-1", Address: "10.0.0.3"}
	ctx := context.Background()
	if done, _, err := s.Done(ctx, tg); err != nil || done {
		t.Fatalf("Done before the join = %v, %v", done, err)
	}
	if _, err := s.Run(ctx, tg); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	cfg := filepath.Join(l.paths.State, "kubeadm", "join-config.yaml")
	if d := cmp.Diff([]string{"join --config " + cfg + " --skip-phases=preflight"}, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	want, _ := renderJoinConfig(joinParams{Version: s.version, Endpoint: ControlPlaneAddress, Token: testToken,
		CACertHash: testHash, CertificateKey: testKey, ControlPlane: true, AdvertiseAddress: "10.0.0.3", NodeName: "master-1"})
	if d := cmp.Diff(string(want), l.read(t, "config.1")); d != "" {
		t.Errorf("join configuration (-want +got):\n%s", d)
	}
	// The join goes through the first master; afterwards the master
	// talks to its own API server.
	if got := l.read(t, "hosts.1"); got != "127.0.0.1 localhost\n"+apiserverHosts("10.0.0.2") {
		t.Errorf("/etc/hosts during the join:\n%s", got)
	}
	if got := l.read(t, "etc/hosts"); got != "127.0.0.1 localhost\n"+apiserverHosts("127.0.0.1") {
		t.Errorf("/etc/hosts after the join:\n%s", got)
	}
	if got, _ := os.ReadFile(filepath.Join(l.home, ".kube", "config")); string(got) != "admin kubeconfig\n" {
		t.Errorf("~/.kube/config = %q", got)
	}
	if exists(cfg) {
		t.Error("the join configuration (it holds the token) is left on the host")
	}
	if done, _, err := s.Done(ctx, tg); err != nil || !done {
		t.Errorf("Done after the join = %v, %v", done, err)
	}
	l.noSecrets(t, testToken, testKey)
	if !strings.Contains(l.log.String(), "joined with token "+redact.Marker) {
		t.Errorf("kubeadm's output is not in the log, redacted:\n%s", l.log.String())
	}
	l.noInjection(t)
}

func TestJoinWorker(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	p := joinParamsFor("node", "v1.29.3")
	p["vip"] = "10.103.97.9"
	s := l.joinStep(t, p)
	if _, err := s.Run(context.Background(), l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	if got := l.read(t, "hosts.1"); !strings.Contains(got, apiserverHosts("10.103.97.9")) {
		t.Errorf("/etc/hosts during the join:\n%s", got)
	}
	c := l.read(t, "config.1")
	if strings.Contains(c, "controlPlane") || !strings.Contains(c, "kind: JoinConfiguration") {
		t.Errorf("worker join configuration:\n%s", c)
	}
	if exists(filepath.Join(l.home, ".kube", "config")) {
		t.Error("a worker got ~/.kube/config")
	}
	if done, _, err := s.Done(context.Background(), l.target()); err != nil || !done {
		t.Errorf("Done after the join = %v, %v", done, err)
	}
}

// An interrupted master join (joined, hosts entry not switched yet) is
// finished without joining again.
func TestJoinFinishesInterrupted(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	s := l.joinStep(t, joinParamsFor("master", "v1.29.3"))
	l.write(t, filepath.Join(l.paths.Kube, "kubelet.conf"), "k")
	l.write(t, filepath.Join(l.paths.Kube, "manifests", "kube-apiserver.yaml"), "a")
	l.write(t, filepath.Join(l.paths.Kube, "admin.conf"), "admin kubeconfig\n")
	l.write(t, l.paths.Hosts, apiserverHosts("10.0.0.2"))
	ctx := context.Background()
	if done, _, err := s.Done(ctx, l.target()); err != nil || done {
		t.Fatalf("Done with the entry still on the first master = %v, %v", done, err)
	}
	if _, err := s.Run(ctx, l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	if calls := l.kubeadmCalls(t); len(calls) != 0 {
		t.Errorf("kubeadm called again: %v", calls)
	}
	if got := l.read(t, "etc/hosts"); got != apiserverHosts("127.0.0.1") {
		t.Errorf("/etc/hosts:\n%s", got)
	}
	if done, _, err := s.Done(ctx, l.target()); err != nil || !done {
		t.Errorf("Done after finishing = %v, %v", done, err)
	}
}

func TestJoinV114MasterKeyByFlag(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	s := l.joinStep(t, joinParamsFor("master", "v1.14.1"))
	if _, err := s.Run(context.Background(), l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	cfg := filepath.Join(l.paths.State, "kubeadm", "join-config.yaml")
	want := []string{"join --config " + cfg + " --skip-phases=preflight --certificate-key " + testKey}
	if d := cmp.Diff(want, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	l.noSecrets(t, testToken, testKey)
}

func TestJoinParams(t *testing.T) {
	t.Parallel()
	with := func(role string, k string, v any) Params {
		p := joinParamsFor(role, "v1.29.3")
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
		return p
	}
	tests := []struct {
		name string
		p    Params
		want string
	}{
		{"master", joinParamsFor("master", "v1.29.3"), ""},
		{"node", joinParamsFor("node", "v1.29.3"), ""},
		{"role", with("node", "role", "boss"), `role: "boss"`},
		{"no key", with("master", "certificate_key", nil), "certificate_key:"},
		{"no master address", with("master", "master_address", nil), "master_address:"},
		{"hostile token", with("node", "token", hostile), "token:"},
		{"hash", with("node", "ca_cert_hash", "abc"), "ca_cert_hash:"},
		{"endpoint", with("node", "endpoint", hostile), "endpoint:"},
		{"vip", with("node", "vip", "fd00::1"), "vip:"},
		{"version", with("node", "version", "1.12.0"), "version:"},
		{"phase", with("node", "skip_phases", []string{"a b"}), "skip_phases:"},
	}
	for _, tt := range tests {
		_, err := joinKind().New(tt.p)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}
