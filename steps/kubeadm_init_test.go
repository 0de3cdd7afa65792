package steps

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/redact"
)

// fakeKubeadm records each call's arguments (kubeadm.calls), the
// configuration file it was given (config.N) and /etc/hosts at that time
// (hosts.N); init writes admin.conf and the CA and, like kubeadm, prints
// the join command with the token and the certificate key.
const fakeKubeadm = `n=$(cat "$FAKE_DIR/kubeadm.n" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$FAKE_DIR/kubeadm.n"
printf '%s\n' "$*" >>"$FAKE_DIR/kubeadm.calls"
cfg=; prev=
for a in "$@"; do
	if [ "$prev" = --config ]; then cfg=$a; fi
	prev=$a
done
if [ -n "$cfg" ]; then cat "$cfg" >"$FAKE_DIR/config.$n"; fi
if [ -f "$FAKE_HOSTS" ]; then cp "$FAKE_HOSTS" "$FAKE_DIR/hosts.$n"; fi
[ ! -f "$FAKE_DIR/kubeadm.fail" ] || exit 1
case "$1 $2" in
"init --config")
	mkdir -p "$FAKE_KUBE/pki"
	cp "$FAKE_DIR/ca.crt" "$FAKE_KUBE/pki/ca.crt"
	echo "admin kubeconfig" >"$FAKE_KUBE/admin.conf"
	tok=$(sed -n 's/^ *- token: //p' "$cfg")
	key=$(sed -n 's/^certificateKey: //p' "$cfg")
	echo "kubeadm join apiserver.cluster.local:6443 --token $tok --control-plane --certificate-key $key"
	echo "certificate key: $key" >&2
	;;
"token create")
	sed -n 's/^ *- token: //p' "$cfg"
	;;
"join --config")
	mkdir -p "$FAKE_KUBE/manifests"
	echo kubelet >"$FAKE_KUBE/kubelet.conf"
	if grep -q '^controlPlane:' "$cfg"; then
		echo apiserver >"$FAKE_KUBE/manifests/kube-apiserver.yaml"
		echo "admin kubeconfig" >"$FAKE_KUBE/admin.conf"
	fi
	sed -n 's/^ *token: /joined with token /p' "$cfg"
	;;
"reset -f")
	rm -rf "$FAKE_KUBE/manifests"
	;;
esac
`

const fakeKubectl = `if [ -f "$FAKE_DIR/ready" ]; then echo ok; else echo "connection refused" >&2; exit 1; fi
`

func (l *lab) kubeadmCalls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, "kubeadm.calls"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func newInitLab(t *testing.T) (*lab, string) {
	t.Helper()
	l := newLab(t)
	l.fake(t, "kubeadm", fakeKubeadm)
	l.fake(t, "kubectl", fakeKubectl)
	ca, hash := testCA(t)
	l.write(t, filepath.Join(l.dir, "ca.crt"), string(ca))
	l.write(t, l.paths.Hosts, "127.0.0.1 localhost\n")
	return l, hash
}

func (l *lab) initStep(t *testing.T, p Params) *kubeadmInit {
	t.Helper()
	s, err := newKubeadmInit(p, l.paths, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.readyTries = 1
	return s
}

func initParams(version string) Params {
	return Params{
		"version": version, "masters": []string{"10.0.0.2", "10.0.0.3"},
		"skip_phases": []string{"preflight"}, "ignore_preflight_errors": []string{"all"},
	}
}

var (
	tokenOut = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	keyOut   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func TestKubeadmInitFresh(t *testing.T) {
	t.Parallel()
	l, hash := newInitLab(t)
	s := l.initStep(t, initParams("v1.34.4"))
	tg := l.target()
	tg.Host = Host{Name: "master-0", Address: "10.0.0.2"}
	out, err := s.Run(context.Background(), tg)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	if !tokenOut.MatchString(out["token"]) || !keyOut.MatchString(out["certificate_key"]) {
		t.Errorf("outputs %v: bad token or certificate key", out)
	}
	if out["ca_cert_hash"] != hash || out["join_endpoint"] != "apiserver.cluster.local:6443" {
		t.Errorf("outputs %v, want ca_cert_hash %s and join_endpoint apiserver.cluster.local:6443", out, hash)
	}
	cfgPath := filepath.Join(l.paths.State, "kubeadm", "init-config.yaml")
	want := []string{"init --config " + cfgPath + " --upload-certs --skip-phases=preflight --ignore-preflight-errors=all"}
	if d := cmp.Diff(want, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	// kubeadm got the rendered configuration with the generated secrets.
	wantCfg, err := RenderKubeadmConfig(KubeadmParams{
		Version: "v1.34.4", Masters: []string{"10.0.0.2", "10.0.0.3"}, AdvertiseAddress: "10.0.0.2",
		NodeName: "master-0", Token: out["token"], CertificateKey: out["certificate_key"],
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(wantCfg), l.read(t, "config.1")); d != "" {
		t.Errorf("configuration given to kubeadm init (-want +got):\n%s", d)
	}
	if !strings.Contains(l.read(t, "hosts.1"), "127.0.0.1 apiserver.cluster.local") {
		t.Errorf("during kubeadm init /etc/hosts was:\n%s", l.read(t, "hosts.1"))
	}
	if exists(cfgPath) {
		t.Error("the configuration file (it holds the token) is left on the host")
	}
	if st, err := os.Stat(filepath.Dir(cfgPath)); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("configuration directory: %v, %v; want mode 0700", st.Mode(), err)
	}
	if got, _ := os.ReadFile(filepath.Join(l.home, ".kube", "config")); string(got) != "admin kubeconfig\n" {
		t.Errorf("~/.kube/config = %q", got)
	}
	l.noSecrets(t, out["token"], out["certificate_key"])
	if !strings.Contains(l.log.String(), "--token "+redact.Marker) {
		t.Errorf("kubeadm's output is not in the log, redacted:\n%s", l.log.String())
	}
	l.noInjection(t)
}

func TestKubeadmInitAgain(t *testing.T) {
	t.Parallel()
	l, hash := newInitLab(t)
	s := l.initStep(t, initParams("v1.29.3"))
	ctx := context.Background()
	first, err := s.Run(ctx, l.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	l.write(t, filepath.Join(l.dir, "ready"), "")
	second, err := s.Run(ctx, l.target())
	if err != nil {
		t.Fatalf("second run: %v\nlog:\n%s", err, l.log.String())
	}
	cfg := filepath.Join(l.paths.State, "kubeadm", "init-config.yaml")
	want := []string{
		"init --config " + cfg + " --upload-certs --skip-phases=preflight --ignore-preflight-errors=all",
		"token create --config " + cfg,
		"init phase upload-certs --upload-certs --config " + cfg,
	}
	if d := cmp.Diff(want, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	if second["token"] == first["token"] || second["certificate_key"] == first["certificate_key"] {
		t.Error("the second run returned the first run's secrets")
	}
	for _, n := range []string{"config.2", "config.3"} {
		c := l.read(t, n)
		if !strings.Contains(c, "token: "+second["token"]) || !strings.Contains(c, "certificateKey: "+second["certificate_key"]) {
			t.Errorf("%s does not hold the new token and key:\n%s", n, c)
		}
	}
	if second["ca_cert_hash"] != hash {
		t.Errorf("ca_cert_hash %s, want %s", second["ca_cert_hash"], hash)
	}
	l.noSecrets(t, first["token"], first["certificate_key"], second["token"], second["certificate_key"])
}

func TestKubeadmInitHalfDone(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	l.write(t, filepath.Join(l.paths.Kube, "admin.conf"), "x")
	_, err := l.initStep(t, initParams("v1.29.3")).Run(context.Background(), l.target())
	if err == nil || !strings.Contains(err.Error(), "reset this host") {
		t.Errorf("error %v, want one saying to reset the host", err)
	}
	if calls := l.kubeadmCalls(t); len(calls) != 0 {
		t.Errorf("kubeadm was called: %v", calls)
	}
}

// A master whose etcd holds data and whose API server does not come back
// is never advised a reset (that would destroy the cluster); the wait
// backs off (1 s, 2 s ...) before it gives up.
func TestKubeadmInitNeverAdvisesResetWithEtcdData(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	l.write(t, filepath.Join(l.paths.Kube, "admin.conf"), "x")
	l.write(t, filepath.Join(l.paths.Etcd, "member", "snap", "db"), "data")
	s := l.initStep(t, initParams("v1.29.3"))
	s.readyTries = 3
	start := time.Now()
	_, err := s.Run(context.Background(), l.target())
	if err == nil || strings.Contains(err.Error(), "reset this host (the reset step)") || !strings.Contains(err.Error(), "Do not reset this host") ||
		!strings.Contains(err.Error(), "etcd holds data") || !strings.Contains(err.Error(), "within 3s") {
		t.Errorf("error %v, want one saying etcd holds data, not to reset, and the 3s waited", err)
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("gave up after %s, want the backoff's 1s+2s", d)
	}
	if calls := l.kubeadmCalls(t); len(calls) != 0 {
		t.Errorf("kubeadm was called: %v", calls)
	}
}

func TestKubeadmInitV114KeyByFlag(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	out, err := l.initStep(t, Params{"version": "v1.14.1", "masters": []string{"10.0.0.2"}}).Run(context.Background(), l.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	cfg := filepath.Join(l.paths.State, "kubeadm", "init-config.yaml")
	want := []string{"init --config " + cfg + " --experimental-upload-certs --certificate-key " + out["certificate_key"]}
	if d := cmp.Diff(want, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	if c := l.read(t, "config.1"); !strings.Contains(c, "apiVersion: kubeadm.k8s.io/v1beta1") || strings.Contains(c, "certificateKey") {
		t.Errorf("v1.14 configuration:\n%s", c)
	}
	l.noSecrets(t, out["token"], out["certificate_key"])
}

func TestKubeadmInitUserConfig(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	user := filepath.Join(t.TempDir(), "kubeadm.yaml")
	const userCfg = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n# mine\n"
	if err := os.WriteFile(user, []byte(userCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := initParams("v1.29.3")
	p["kubeadm_config"] = user
	out, err := l.initStep(t, p).Run(context.Background(), l.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, l.log.String())
	}
	dir := filepath.Join(l.paths.State, "kubeadm")
	want := []string{
		"init --config " + filepath.Join(dir, "user-config.yaml") + " --upload-certs --skip-phases=preflight --ignore-preflight-errors=all",
		"token create --config " + filepath.Join(dir, "init-config.yaml"),
		"init phase upload-certs --upload-certs --config " + filepath.Join(dir, "init-config.yaml"),
	}
	if d := cmp.Diff(want, l.kubeadmCalls(t)); d != "" {
		t.Errorf("kubeadm calls (-want +got):\n%s", d)
	}
	if got := l.read(t, "config.1"); got != userCfg {
		t.Errorf("kubeadm init got %q, want the user's file as given", got)
	}
	if !strings.Contains(l.read(t, "config.2"), out["token"]) {
		t.Error("the token created is not the output token")
	}
	if got, _ := os.ReadFile(user); string(got) != userCfg {
		t.Error("the user's file was changed")
	}
	for _, f := range []string{"user-config.yaml", "init-config.yaml"} {
		if exists(filepath.Join(dir, f)) {
			t.Errorf("%s is left on the host", f)
		}
	}
}

func TestKubeadmInitFails(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	l.write(t, filepath.Join(l.dir, "kubeadm.fail"), "")
	_, err := l.initStep(t, initParams("v1.29.3")).Run(context.Background(), l.target())
	if err == nil || !strings.Contains(err.Error(), "kubeadm init: exit status 1") {
		t.Errorf("error %v, want kubeadm init's exit status", err)
	}
	if exists(filepath.Join(l.paths.State, "kubeadm", "init-config.yaml")) {
		t.Error("the configuration file is left on the host after a failure")
	}
}

func TestKubeadmInitParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Params
		want string
	}{
		{"ok", Params{"version": "v1.29.3", "masters": []string{"10.0.0.2"}}, ""},
		{"no version", Params{"masters": []string{"10.0.0.2"}}, "version:"},
		{"no masters", Params{"version": "v1.29.3"}, "masters: empty"},
		{"hostile phase", Params{"version": "v1.29.3", "masters": []string{"10.0.0.2"}, "skip_phases": []string{hostile}}, "skip_phases:"},
		{"hostile ignore", Params{"version": "v1.29.3", "masters": []string{"10.0.0.2"}, "ignore_preflight_errors": []string{"a,b"}}, "ignore_preflight_errors:"},
		{"bad vip", Params{"version": "v1.29.3", "masters": []string{"10.0.0.2"}, "vip": hostile}, "vip:"},
		{"bad node name", Params{"version": "v1.29.3", "masters": []string{"10.0.0.2"}, "node_name": hostile}, "node_name:"},
	}
	for _, tt := range tests {
		_, err := kubeadmInitKind().New(tt.p)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// The user's own ~/.kube/config survives an init and comes back with a
// reset; other files in ~/.kube are never touched.
func TestKubeconfigOfTheUserKept(t *testing.T) {
	t.Parallel()
	l, _ := newInitLab(t)
	kube := filepath.Join(l.home, ".kube")
	l.write(t, filepath.Join(kube, "config"), "the user's cluster\n")
	l.write(t, filepath.Join(kube, "other-cluster.yaml"), "another\n")
	tg := l.target()
	tg.Host = Host{Name: "master-0", Address: "10.0.0.2"}
	ctx := context.Background()
	if _, err := l.initStep(t, initParams("v1.34.4")).Run(ctx, tg); err != nil {
		t.Fatalf("init: %v\nlog:\n%s", err, l.log.String())
	}
	if got, _ := os.ReadFile(filepath.Join(kube, "config")); string(got) != "admin kubeconfig\n" {
		t.Errorf("~/.kube/config after init = %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(kube, "config.sealflow-backup")); string(got) != "the user's cluster\n" {
		t.Errorf("backup = %q, want the user's config", got)
	}
	// kubeadm reset removes admin.conf first in real life: the recorded
	// sha256 still tells sealflow's config from the user's.
	os.Remove(filepath.Join(l.paths.Kube, "admin.conf"))
	r, err := newReset(Params{}, l.paths)
	if err != nil {
		t.Fatal(err)
	}
	r.Run(ctx, tg) // other parts of the stand-in host may warn
	if got, _ := os.ReadFile(filepath.Join(kube, "config")); string(got) != "the user's cluster\n" {
		t.Errorf("~/.kube/config after reset = %q, want the user's back", got)
	}
	ents, _ := os.ReadDir(kube)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if d := cmp.Diff([]string{"config", "other-cluster.yaml"}, names); d != "" {
		t.Errorf("~/.kube after reset (-want +got):\n%s", d)
	}
}
