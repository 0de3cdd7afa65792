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

// writeUserConfig writes a kubeadm_config file and returns its path.
func writeUserConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "join.yaml")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// The user's master file keeps every field it sets (its own endpoint,
// bind port, CRI socket, taints); sealflow fills the token, CA hash, node
// name, certificate key and advertise address, says which, and prints
// neither secret.
func TestJoinUserConfigMaster(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	const user = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: ""
    apiServerEndpoint: 10.0.0.9:6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
controlPlane:
  localAPIEndpoint:
    bindPort: 6444
`
	file := writeUserConfig(t, user)
	p := joinParamsFor("master", "v1.34.4")
	p["kubeadm_config"] = file
	s := l.joinStep(t, p)
	tg := l.target()
	tg.Host = Host{Name: "master-1", Address: "10.0.0.3"}
	if _, err := s.Run(context.Background(), tg); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	want := `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: ` + testToken + `
    apiServerEndpoint: 10.0.0.9:6443
    caCertHashes:
      - ` + testHash + `
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
  name: master-1
controlPlane:
  localAPIEndpoint:
    bindPort: 6444
    advertiseAddress: 10.0.0.3
  certificateKey: ` + testKey + `
`
	if d := cmp.Diff(want, l.read(t, "config.1")); d != "" {
		t.Errorf("configuration kubeadm join got (-want +got):\n%s", d)
	}
	cfg := filepath.Join(l.paths.State, "kubeadm", "join-config.yaml")
	ups := l.conn.Uploads()
	if len(ups) != 1 || ups[0].Dst != cfg || ups[0].Mode != 0o600 {
		t.Errorf("uploads %+v, want the merged configuration once, mode 0600, to %s", ups, cfg)
	}
	filled := "kubeadm_config " + file + ": sealflow filled discovery.bootstrapToken.token, discovery.bootstrapToken.caCertHashes, " +
		"nodeRegistration.name, controlPlane.certificateKey, controlPlane.localAPIEndpoint.advertiseAddress\n"
	if !strings.Contains(l.log.String(), filled) {
		t.Errorf("the log does not say which fields sealflow filled (want %q):\n%s", filled, l.log.String())
	}
	if got, _ := os.ReadFile(file); string(got) != user {
		t.Error("the user's file was changed")
	}
	if exists(cfg) {
		t.Error("the join configuration (it holds the token) is left on the host")
	}
	l.noSecrets(t, testToken, testKey)
}

// A worker's file: its own token wins (and is kept out of the log as a
// secret), the other documents pass through, and no controlPlane appears.
func TestJoinUserConfigWorker(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	const userToken = "zyxwvu.9876543210fedcba"
	file := writeUserConfig(t, `---
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: `+userToken+`
  timeout: 10m0s
nodeRegistration:
  name: edge-7
  kubeletExtraArgs:
    node-labels: zone=a
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
`)
	p := joinParamsFor("node", "v1.29.3")
	p["kubeadm_config"] = file
	s := l.joinStep(t, p)
	if _, err := s.Run(context.Background(), l.target()); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	want := `apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: ` + userToken + `
    apiServerEndpoint: apiserver.cluster.local:6443
    caCertHashes:
      - ` + testHash + `
  timeout: 10m0s
nodeRegistration:
  name: edge-7
  kubeletExtraArgs:
    node-labels: zone=a
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
`
	if d := cmp.Diff(want, l.read(t, "config.1")); d != "" {
		t.Errorf("configuration kubeadm join got (-want +got):\n%s", d)
	}
	if !strings.Contains(l.log.String(), ": sealflow filled discovery.bootstrapToken.apiServerEndpoint, discovery.bootstrapToken.caCertHashes\n") {
		t.Errorf("the log does not say which fields sealflow filled:\n%s", l.log.String())
	}
	l.noSecrets(t, userToken)
}

func TestJoinUserConfigRefused(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name, role, text string
		want             []string
	}{
		{"older API", "node", "apiVersion: kubeadm.k8s.io/v1beta3\nkind: JoinConfiguration\n",
			[]string{"kubeadm_config ", "document 1 (JoinConfiguration) is kubeadm.k8s.io/v1beta3", "v1.34.4 reads kubeadm.k8s.io/v1beta4", "kubeadm config migrate"}},
		{"other kubeadm document in an older API", "node",
			"apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n",
			[]string{"document 2 (ClusterConfiguration) is kubeadm.k8s.io/v1beta3"}},
		{"no JoinConfiguration", "node", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n",
			[]string{"no JoinConfiguration document", "apiVersion: kubeadm.k8s.io/v1beta4, kind: JoinConfiguration"}},
		{"two JoinConfigurations", "node", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n",
			[]string{"more than one JoinConfiguration"}},
		{"not a mapping", "node", "- a\n", []string{"document 1 is not a mapping"}},
		{"no kind", "node", "apiVersion: kubeadm.k8s.io/v1beta4\n", []string{"document 1 has no apiVersion or kind"}},
		{"worker with controlPlane", "node", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncontrolPlane: {}\n",
			[]string{"controlPlane", "role is node"}},
		{"discovery not a mapping", "node", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: x\n",
			[]string{"JoinConfiguration discovery is not a mapping"}},
		{"missing file", "master", "", []string{"kubeadm_config: read " + missing + ": no such file"}},
	}
	for _, tt := range tests {
		p := joinParamsFor(tt.role, "v1.34.4")
		p["kubeadm_config"] = missing
		if tt.text != "" {
			p["kubeadm_config"] = writeUserConfig(t, tt.text)
		}
		_, err := joinKind().New(p)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q, want it to say %q", tt.name, err, w)
			}
		}
	}
	// A file with discovery.file is left to it: no bootstrap token added.
	p := joinParamsFor("node", "v1.34.4")
	p["kubeadm_config"] = writeUserConfig(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  file:\n    kubeConfigPath: /etc/kubernetes/discovery.conf\n")
	s, err := newJoin(p, defaultPaths())
	if err != nil {
		t.Fatal(err)
	}
	out, filled, _, err := s.user.merged(s.jp)
	if err != nil || strings.Contains(string(out), "bootstrapToken") || len(filled) != 0 {
		t.Errorf("file discovery: filled %v, err %v:\n%s", filled, err, out)
	}
}
