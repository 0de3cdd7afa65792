package steps

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/kubeadm")

const (
	testToken = "abcdef.0123456789abcdef"
	testKey   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testHash  = "sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "kubeadm", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./steps -run Golden -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", file, d)
	}
}

func TestAPIVersionOfRelease(t *testing.T) {
	t.Parallel()
	tests := []struct{ version, want string }{
		{"v1.13.0", "kubeadm.k8s.io/v1beta1"},
		{"1.14.1", "kubeadm.k8s.io/v1beta1"},
		{"v1.15.0", "kubeadm.k8s.io/v1beta2"},
		{"v1.21.14", "kubeadm.k8s.io/v1beta2"},
		{"v1.22.0", "kubeadm.k8s.io/v1beta3"},
		{"v1.30.9", "kubeadm.k8s.io/v1beta3"},
		{"v1.31.0", "kubeadm.k8s.io/v1beta4"},
		{"v1.34.4", "kubeadm.k8s.io/v1beta4"},
		{"v1.35.0-rc.1", "kubeadm.k8s.io/v1beta4"},
	}
	for _, tt := range tests {
		v, err := parseKubeVersion(tt.version)
		if err != nil {
			t.Errorf("parseKubeVersion(%q): %v", tt.version, err)
			continue
		}
		if got := v.APIVersion(); got != tt.want {
			t.Errorf("%s: apiVersion %s, want %s", tt.version, got, tt.want)
		}
	}
	for _, bad := range []string{"", "latest", "v1.12.0", "v2.0.0", "v1.29.0; rm -rf /", "1.x"} {
		if _, err := parseKubeVersion(bad); err == nil {
			t.Errorf("parseKubeVersion(%q) succeeded", bad)
		}
	}
}

func goldenParams(version string) KubeadmParams {
	return KubeadmParams{
		Version:          version,
		Masters:          []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"},
		AdvertiseAddress: "10.0.0.2",
		NodeName:         "master-0",
		ExtraSANs:        []string{"k8s.example.com", "10.0.0.2"},
		Token:            testToken,
		CertificateKey:   testKey,
	}
}

func TestKubeadmConfigGolden(t *testing.T) {
	t.Parallel()
	for _, v := range []struct{ version, file string }{
		{"v1.14.1", "init-v1beta1.yaml"},
		{"v1.18.6", "init-v1beta2.yaml"},
		{"v1.29.3", "init-v1beta3.yaml"},
		{"v1.34.4", "init-v1beta4.yaml"},
	} {
		p := goldenParams(v.version)
		if v.version == "v1.29.3" {
			p.ImageRepository = "registry.example.com/k8s"
			p.PodCIDR, p.SvcCIDR, p.VIP = "10.244.0.0/16", "10.97.0.0/16", "10.103.97.9"
		}
		got, err := RenderKubeadmConfig(p)
		if err != nil {
			t.Fatalf("%s: %v", v.version, err)
		}
		golden(t, v.file, got)
		checkInitConfig(t, v.version, got, p)
	}
}

// checkInitConfig reads a rendered file back as YAML documents and checks
// what kubeadm and kube-proxy depend on.
func checkInitConfig(t *testing.T, version string, data []byte, p KubeadmParams) {
	t.Helper()
	docs := map[string]map[string]any{}
	for _, d := range strings.Split(string(data), "---\n") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("%s: %v in\n%s", version, err, d)
		}
		docs[m["kind"].(string)] = m
	}
	v, _ := parseKubeVersion(version)
	initDoc, cluster, proxy := docs["InitConfiguration"], docs["ClusterConfiguration"], docs["KubeProxyConfiguration"]
	if initDoc == nil || cluster == nil || proxy == nil {
		t.Fatalf("%s: documents %v, want InitConfiguration, ClusterConfiguration, KubeProxyConfiguration", version, docs)
	}
	if initDoc["apiVersion"] != v.APIVersion() || cluster["apiVersion"] != v.APIVersion() {
		t.Errorf("%s: apiVersion %v/%v", version, initDoc["apiVersion"], cluster["apiVersion"])
	}
	tok := initDoc["bootstrapTokens"].([]any)[0].(map[string]any)["token"]
	if tok != p.Token {
		t.Errorf("%s: token %v", version, tok)
	}
	_, hasKey := initDoc["certificateKey"]
	if hasKey != (v.Minor >= 15) {
		t.Errorf("%s: certificateKey present = %v", version, hasKey)
	}
	if cluster["controlPlaneEndpoint"] != "apiserver.cluster.local:6443" {
		t.Errorf("%s: controlPlaneEndpoint %v", version, cluster["controlPlaneEndpoint"])
	}
	vip := orDefault(p.VIP, DefaultVIP)
	sans := cluster["apiServer"].(map[string]any)["certSANs"].([]any)
	for _, want := range append([]string{vip, "127.0.0.1", "apiserver.cluster.local"}, p.Masters...) {
		found := false
		for _, s := range sans {
			found = found || s == want
		}
		if !found {
			t.Errorf("%s: certSANs %v lack %s", version, sans, want)
		}
	}
	if proxy["mode"] != "ipvs" {
		t.Errorf("%s: kube-proxy mode %v", version, proxy["mode"])
	}
	ex := proxy["ipvs"].(map[string]any)["excludeCIDRs"].([]any)
	if len(ex) != 1 || ex[0] != vip+"/32" {
		t.Errorf("%s: excludeCIDRs %v, want [%s/32]", version, ex, vip)
	}
}

func TestJoinConfigGolden(t *testing.T) {
	t.Parallel()
	for _, v := range []struct{ version, file string }{
		{"v1.14.1", "join-master-v1beta1.yaml"},
		{"v1.18.6", "join-master-v1beta2.yaml"},
		{"v1.29.3", "join-master-v1beta3.yaml"},
		{"v1.34.4", "join-master-v1beta4.yaml"},
		{"v1.34.4", "join-node-v1beta4.yaml"},
	} {
		kv, _ := parseKubeVersion(v.version)
		master := strings.Contains(v.file, "master")
		p := joinParams{Version: kv, Endpoint: ControlPlaneAddress, Token: testToken, CACertHash: testHash,
			ControlPlane: master, NodeName: "node-1"}
		if master {
			p.CertificateKey, p.AdvertiseAddress = testKey, "10.0.0.3"
		}
		got, err := renderJoinConfig(p)
		if err != nil {
			t.Fatalf("%s: %v", v.file, err)
		}
		golden(t, v.file, got)
		if strings.Contains(string(got), testKey) != (master && kv.Minor >= 15) {
			t.Errorf("%s: certificate key in the file = %v", v.file, !master)
		}
	}
}

func TestRenderKubeadmConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*KubeadmParams)
		want   string
	}{
		{"version", func(p *KubeadmParams) { p.Version = "next" }, "version:"},
		{"vip", func(p *KubeadmParams) { p.VIP = "10.0.0" }, "vip:"},
		{"ipv6 vip", func(p *KubeadmParams) { p.VIP = "fd00::1" }, "vip:"},
		{"no masters", func(p *KubeadmParams) { p.Masters = nil }, "masters: empty"},
		{"hostile master", func(p *KubeadmParams) { p.Masters = []string{hostile} }, "masters:"},
		{"pod cidr", func(p *KubeadmParams) { p.PodCIDR = "100.64.0.0" }, "pod_cidr:"},
		{"svc cidr", func(p *KubeadmParams) { p.SvcCIDR = "x" }, "svc_cidr:"},
		{"token", func(p *KubeadmParams) { p.Token = "ABCDEF.0123456789abcdef" }, "token:"},
		{"key", func(p *KubeadmParams) { p.CertificateKey = "00" }, "certificate key:"},
		{"advertise", func(p *KubeadmParams) { p.AdvertiseAddress = "host" }, "advertise_address:"},
		{"node name", func(p *KubeadmParams) { p.NodeName = "Node_1" }, "node_name:"},
		{"hostile node name", func(p *KubeadmParams) { p.NodeName = "a\nkind: x" }, "node_name:"},
		{"image repository", func(p *KubeadmParams) { p.ImageRepository = "a b" }, "image_repository:"},
		{"extra san", func(p *KubeadmParams) { p.ExtraSANs = []string{"a\n- b"} }, "extra_sans:"},
	}
	for _, tt := range tests {
		p := goldenParams("v1.29.3")
		tt.change(&p)
		_, err := RenderKubeadmConfig(p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestSecretsGenerated(t *testing.T) {
	t.Parallel()
	tokRE := regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		tok, err := newToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !tokRE.MatchString(tok) {
			t.Fatalf("token %q does not match %s", tok, tokRE)
		}
		key, err := newCertificateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := hex.DecodeString(key); err != nil || len(b) != 32 {
			t.Fatalf("key %q is not 32 bytes in hex", key)
		}
		if seen[tok] || seen[key] {
			t.Fatalf("a secret came twice: %s %s", tok, key)
		}
		seen[tok], seen[key] = true, true
	}
	// Bytes >= 252 are dropped (no modulo bias); a reader that runs dry
	// is an error, not a short token.
	tok, err := newToken(bytes.NewReader(bytes.Repeat([]byte{0, 255, 35, 36}, 20)))
	if err != nil || tok != "a9aa9a.a9aa9aa9aa9aa9aa" {
		t.Errorf("token from fixed bytes = %q, %v", tok, err)
	}
	if _, err := newToken(bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Error("token from 3 bytes succeeded")
	}
}

// testCA returns a PEM CA certificate and, computed apart from
// CACertHash, its discovery hash.
func testCA(t *testing.T) ([]byte, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "sha256:" + hex.EncodeToString(sum[:])
}

func TestCACertHash(t *testing.T) {
	t.Parallel()
	ca, want := testCA(t)
	got, err := CACertHash(ca)
	if err != nil || got != want {
		t.Errorf("CACertHash = %q, %v; want %q", got, err, want)
	}
	other, _ := testCA(t)
	if h, _ := CACertHash(other); h == want {
		t.Error("two CAs have the same hash")
	}
	for _, bad := range [][]byte{nil, []byte("not pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})} {
		if _, err := CACertHash(bad); err == nil {
			t.Errorf("CACertHash(%q) succeeded", bad)
		}
	}
}

func TestRenderProxyModeAndKubeletConfig(t *testing.T) {
	p := goldenParams("v1.34.4")
	for _, c := range []struct {
		mode, kubelet, proxy string
		want, absent         []string
		err                  string
	}{
		{mode: "", want: []string{"mode: ipvs", "excludeCIDRs:\n    - 10.255.255.253/32"}},
		{mode: "nftables", want: []string{"mode: nftables"}, absent: []string{"excludeCIDRs", "KubeletConfiguration"}},
		{mode: "iptables", kubelet: "{failCgroupV1: false, cgroupRoot: /}", want: []string{"mode: iptables",
			"---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\ncgroupRoot: /\n"}},
		{mode: "userspace", err: `proxy_mode: "userspace": want ipvs, nftables, iptables`},
		{kubelet: "kind: X", err: "kubelet_config: kind is set by sealflow"},
		{kubelet: "[a, b]", err: "kubelet_config: not a YAML mapping"},
		{mode: "nftables", proxy: "{conntrack: {maxPerCore: 0}}", want: []string{
			"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nconntrack:\n  maxPerCore: 0\n"}},
		{proxy: "{conntrack: {maxPerCore: 0}}", want: []string{"mode: ipvs\nipvs:\n  excludeCIDRs:\n    - 10.255.255.253/32\nconntrack:"}},
		{proxy: "{ipvs: {scheduler: wrr}}", err: "proxy_config: ipvs is set by sealflow"},
		{mode: "iptables", proxy: "{mode: ipvs}", err: "proxy_config: mode is set by proxy_mode"},
		{proxy: "kind: X", err: "proxy_config: kind is set by sealflow"},
	} {
		p.ProxyMode, p.KubeletConfig, p.ProxyConfig = c.mode, c.kubelet, c.proxy
		out, err := RenderKubeadmConfig(p)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("mode %q kubelet %q: error %v, want %q", c.mode, c.kubelet, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("mode %q kubelet %q: no %q in\n%s", c.mode, c.kubelet, w, out)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(string(out), a) {
				t.Errorf("mode %q: %q in\n%s", c.mode, a, out)
			}
		}
	}
}
