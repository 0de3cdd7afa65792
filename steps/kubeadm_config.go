package steps

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-yaml"
)

// Defaults of the Kubernetes kinds.
const (
	// DefaultVIP lies outside DefaultSvcCIDR and DefaultPodCIDR (and
	// the usual pod networks 10.244.0.0/16 and 192.168.0.0/16): at the top
	// of 10.0.0.0/8, the last place allocators that fill from the bottom
	// (DHCP ranges, IPAM pools such as Cilium's 10.0.0.0/8) reach, and not
	// .254 or .1, the usual gateways. 10.103.97.2, the seed's, is inside
	// 10.96.0.0/12: the ClusterIP allocator may give it to a Service.
	DefaultVIP          = "10.255.255.253"
	DefaultPodCIDR      = "100.64.0.0/10"
	DefaultSvcCIDR      = "10.96.0.0/12"
	ControlPlaneAddress = apiserverName + ":6443"
	apiserverPort       = 6443
)

// kubeVersion is a Kubernetes minor release.
type kubeVersion struct {
	Major, Minor int
	Text         string // as given, with a leading "v"
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(\.\d+)?([-+][0-9A-Za-z.+-]*)?$`)

func parseKubeVersion(s string) (kubeVersion, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return kubeVersion{}, fmt.Errorf("%q is not a Kubernetes version like v1.29.3", s)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	v := kubeVersion{Major: major, Minor: minor, Text: "v" + strings.TrimPrefix(strings.TrimSpace(s), "v")}
	if major != 1 || minor < 13 {
		return kubeVersion{}, fmt.Errorf("%q: kubeadm configuration files are supported from v1.13 on", s)
	}
	return v, nil
}

// APIVersion returns the kubeadm configuration API for the release.
func (v kubeVersion) APIVersion() string {
	switch {
	case v.Minor <= 14:
		return "kubeadm.k8s.io/v1beta1"
	case v.Minor <= 21:
		return "kubeadm.k8s.io/v1beta2"
	case v.Minor <= 30:
		return "kubeadm.k8s.io/v1beta3"
	}
	return "kubeadm.k8s.io/v1beta4"
}

// keyInConfig: from v1beta2 on the certificate key is a field of the
// configuration; v1.14 takes it as a flag; v1.13 cannot upload certs.
func (v kubeVersion) keyInConfig() bool { return v.Minor >= 15 }

// uploadCertsFlags are the flags that make `kubeadm init` (or its
// upload-certs phase) upload the control-plane certificates. For v1.14
// the key must be on the command line: $SF_KEY is expanded by the shell.
func (v kubeVersion) uploadCertsFlags() string {
	switch {
	case v.Minor >= 15:
		return "--upload-certs"
	case v.Minor == 14:
		return `--experimental-upload-certs --certificate-key "$SF_KEY"`
	}
	return ""
}

// KubeadmParams is what RenderKubeadmConfig needs.
type KubeadmParams struct {
	Version          string   // e.g. v1.29.3: picks the apiVersion
	VIP              string   // the virtual IP workers reach the masters through
	Masters          []string // addresses of every master
	AdvertiseAddress string   // this master's address; empty: kubeadm's choice
	NodeName         string   // empty: the machine's host name
	PodCIDR          string   // default DefaultPodCIDR
	SvcCIDR          string   // default DefaultSvcCIDR
	ImageRepository  string
	ExtraSANs        []string
	Token            string // bootstrap token [a-z0-9]{6}.[a-z0-9]{16}
	CertificateKey   string // 64 hex digits
	// ProxyMode is kube-proxy's mode: ipvs (default; the VIP is excluded),
	// nftables or iptables (for kernels without IPVS).
	ProxyMode string
	// KubeletConfig is a YAML mapping of KubeletConfiguration fields
	// (failCgroupV1: false, cgroupRoot: /, ...), rendered as that document:
	// kubeadm stores it for every node of the cluster.
	KubeletConfig string
	// ProxyConfig is a YAML mapping of more KubeProxyConfiguration fields
	// ({conntrack: {maxPerCore: 0}}, ...); mode (ProxyMode) and, in IPVS
	// mode, ipvs are sealflow's.
	ProxyConfig string
	// AllowVIPInCIDR accepts a VIP inside PodCIDR or SvcCIDR: only for a
	// cluster built so already (the seed's 10.103.97.2 in 10.96.0.0/12),
	// whose VIP is in its certificates and on every worker.
	AllowVIPInCIDR bool
}

// ProxyModes are kube-proxy's modes sealflow configures.
var ProxyModes = []string{"ipvs", "nftables", "iptables"}

type (
	kcBootstrapToken struct {
		Token       string   `yaml:"token"`
		Description string   `yaml:"description"`
		TTL         string   `yaml:"ttl"`
		Usages      []string `yaml:"usages"`
		Groups      []string `yaml:"groups"`
	}
	kcEndpoint struct {
		AdvertiseAddress string `yaml:"advertiseAddress,omitempty"`
		BindPort         int    `yaml:"bindPort"`
	}
	kcNodeRegistration struct {
		Name string `yaml:"name,omitempty"`
	}
	kcInit struct {
		APIVersion       string             `yaml:"apiVersion"`
		Kind             string             `yaml:"kind"`
		BootstrapTokens  []kcBootstrapToken `yaml:"bootstrapTokens"`
		CertificateKey   string             `yaml:"certificateKey,omitempty"`
		LocalAPIEndpoint kcEndpoint         `yaml:"localAPIEndpoint"`
		NodeRegistration kcNodeRegistration `yaml:"nodeRegistration"`
	}
	kcNetworking struct {
		PodSubnet     string `yaml:"podSubnet"`
		ServiceSubnet string `yaml:"serviceSubnet"`
	}
	kcAPIServer struct {
		CertSANs []string `yaml:"certSANs"`
	}
	kcCluster struct {
		APIVersion           string       `yaml:"apiVersion"`
		Kind                 string       `yaml:"kind"`
		KubernetesVersion    string       `yaml:"kubernetesVersion"`
		ControlPlaneEndpoint string       `yaml:"controlPlaneEndpoint"`
		ImageRepository      string       `yaml:"imageRepository,omitempty"`
		Networking           kcNetworking `yaml:"networking"`
		APIServer            kcAPIServer  `yaml:"apiServer"`
	}
	kcIPVS struct {
		ExcludeCIDRs []string `yaml:"excludeCIDRs"`
	}
	kcProxy struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Mode       string  `yaml:"mode"`
		IPVS       *kcIPVS `yaml:"ipvs,omitempty"`
	}
)

var (
	tokenRE = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	keyRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	caHash  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// CheckVIP refuses a VIP inside the pod or the service network: the
// ClusterIP allocator may hand it to a Service (or the CNI to a pod), and
// on every worker that address is lvscare's virtual server.
func CheckVIP(vip netip.Addr, pod, svc netip.Prefix) error {
	for _, n := range []struct {
		name string
		p    netip.Prefix
	}{{"svc_cidr", svc}, {"pod_cidr", pod}} {
		if n.p.Contains(vip) {
			return fmt.Errorf("vip %s lies inside %s %s: Kubernetes may give that address to a Service or a pod, "+
				"while every worker sends it to the masters; choose a VIP outside svc_cidr and pod_cidr (the default is %s). "+
				"A cluster built with such a VIP already: see the README's migration note (allow_vip_in_cidr)",
				vip, n.name, n.p.Masked(), DefaultVIP)
		}
	}
	return nil
}

// RenderKubeadmConfig renders the InitConfiguration, ClusterConfiguration
// and KubeProxyConfiguration (IPVS, the VIP excluded so that kube-proxy
// leaves lvscare's rules alone) for kubeadm init, in the configuration API
// of p.Version.
func RenderKubeadmConfig(p KubeadmParams) ([]byte, error) {
	v, err := parseKubeVersion(p.Version)
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	vip, err := netip.ParseAddr(orDefault(p.VIP, DefaultVIP))
	if err != nil || !vip.Is4() {
		return nil, fmt.Errorf("vip: %q is not an IPv4 address", p.VIP)
	}
	if len(p.Masters) == 0 {
		return nil, fmt.Errorf("masters: empty; give the address of every master")
	}
	pod, err := netip.ParsePrefix(orDefault(p.PodCIDR, DefaultPodCIDR))
	if err != nil {
		return nil, fmt.Errorf("pod_cidr: %q is not a CIDR like %s", p.PodCIDR, DefaultPodCIDR)
	}
	svc, err := netip.ParsePrefix(orDefault(p.SvcCIDR, DefaultSvcCIDR))
	if err != nil {
		return nil, fmt.Errorf("svc_cidr: %q is not a CIDR like %s", p.SvcCIDR, DefaultSvcCIDR)
	}
	if err := CheckVIP(vip, pod, svc); err != nil && !p.AllowVIPInCIDR {
		return nil, err
	}
	if !tokenRE.MatchString(p.Token) {
		return nil, fmt.Errorf("token: not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})")
	}
	if !keyRE.MatchString(p.CertificateKey) {
		return nil, fmt.Errorf("certificate key: not 64 hex digits")
	}
	var adv string
	if p.AdvertiseAddress != "" {
		a, err := netip.ParseAddr(p.AdvertiseAddress)
		if err != nil {
			return nil, fmt.Errorf("advertise_address: %q is not an IP address", p.AdvertiseAddress)
		}
		adv = a.String()
	}
	if p.NodeName != "" && !nodeNameRE().MatchString(p.NodeName) {
		return nil, fmt.Errorf("node_name: %q is not a valid node name (lowercase letters, digits, '-' and '.')", p.NodeName)
	}
	if p.ImageRepository != "" && !imageRepoRE.MatchString(p.ImageRepository) {
		return nil, fmt.Errorf("image_repository: %q is not an image repository like registry.example.com/k8s", p.ImageRepository)
	}
	sans := []string{vip.String()}
	for _, m := range p.Masters {
		if !sanRE.MatchString(m) {
			return nil, fmt.Errorf("masters: %q is not an address or DNS name", m)
		}
		sans = append(sans, m)
	}
	sans = append(sans, "127.0.0.1", apiserverName)
	for _, s := range p.ExtraSANs {
		if !sanRE.MatchString(s) {
			return nil, fmt.Errorf("extra_sans: %q is not an address or DNS name", s)
		}
		sans = append(sans, s)
	}
	sans = dedupe(sans)

	api := v.APIVersion()
	init := kcInit{
		APIVersion: api, Kind: "InitConfiguration",
		BootstrapTokens: []kcBootstrapToken{{
			Token: p.Token, Description: "sealflow", TTL: "24h0m0s",
			Usages: []string{"signing", "authentication"},
			Groups: []string{"system:bootstrappers:kubeadm:default-node-token"},
		}},
		LocalAPIEndpoint: kcEndpoint{AdvertiseAddress: adv, BindPort: apiserverPort},
		NodeRegistration: kcNodeRegistration{Name: p.NodeName},
	}
	if v.keyInConfig() {
		init.CertificateKey = p.CertificateKey
	}
	cluster := kcCluster{
		APIVersion: api, Kind: "ClusterConfiguration",
		KubernetesVersion:    v.Text,
		ControlPlaneEndpoint: ControlPlaneAddress,
		ImageRepository:      p.ImageRepository,
		Networking:           kcNetworking{PodSubnet: pod.String(), ServiceSubnet: svc.String()},
		APIServer:            kcAPIServer{CertSANs: sans},
	}
	proxy := kcProxy{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: "KubeProxyConfiguration", Mode: orDefault(p.ProxyMode, "ipvs")}
	switch proxy.Mode {
	case "ipvs":
		// Without the exclusion kube-proxy deletes lvscare's virtual server.
		proxy.IPVS = &kcIPVS{ExcludeCIDRs: []string{vip.String() + "/32"}}
	case "nftables", "iptables":
	default:
		return nil, fmt.Errorf("proxy_mode: %q: want %s", p.ProxyMode, strings.Join(ProxyModes, ", "))
	}
	var proxyDoc any = proxy
	if strings.TrimSpace(p.ProxyConfig) != "" {
		if proxyDoc, err = proxyConfigDoc(proxy, p.ProxyConfig); err != nil {
			return nil, err
		}
	}
	docs := []any{init, cluster, proxyDoc}
	if strings.TrimSpace(p.KubeletConfig) != "" {
		kc, err := kubeletConfigDoc(p.KubeletConfig)
		if err != nil {
			return nil, err
		}
		docs = append(docs, kc)
	}
	return marshalDocs(docs...)
}

// proxyConfigDoc adds the fields of a YAML mapping to kube-proxy's
// configuration document.
func proxyConfigDoc(base kcProxy, text string) (yaml.MapSlice, error) {
	fields, err := configFields("proxy_config", text)
	if err != nil {
		return nil, err
	}
	doc := yaml.MapSlice{
		{Key: "apiVersion", Value: base.APIVersion},
		{Key: "kind", Value: base.Kind},
		{Key: "mode", Value: base.Mode},
	}
	if base.IPVS != nil {
		doc = append(doc, yaml.MapItem{Key: "ipvs", Value: base.IPVS})
	}
	for _, f := range fields {
		k := f.Key.(string)
		switch {
		case k == "mode":
			return nil, fmt.Errorf("proxy_config: mode is set by proxy_mode")
		case k == "ipvs" && base.IPVS != nil:
			return nil, fmt.Errorf("proxy_config: ipvs is set by sealflow in IPVS mode (the VIP excluded)")
		}
		doc = append(doc, f)
	}
	return doc, nil
}

// configFields reads a YAML mapping of a configuration document's fields
// (without apiVersion and kind, which sealflow sets).
func configFields(param, text string) (yaml.MapSlice, error) {
	var fields yaml.MapSlice
	if err := yaml.UnmarshalWithOptions([]byte(text), &fields, yaml.UseOrderedMap()); err != nil {
		return nil, fmt.Errorf("%s: not a YAML mapping of configuration fields: %v", param, err)
	}
	for _, f := range fields {
		k, ok := f.Key.(string)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: key %v is not a field name", param, f.Key)
		}
		if k == "apiVersion" || k == "kind" {
			return nil, fmt.Errorf("%s: %s is set by sealflow (give only the fields)", param, k)
		}
	}
	return fields, nil
}

// kubeletConfigDoc makes a KubeletConfiguration document of a YAML mapping
// of its fields.
func kubeletConfigDoc(text string) (yaml.MapSlice, error) {
	fields, err := configFields("kubelet_config", text)
	if err != nil {
		return nil, err
	}
	doc := yaml.MapSlice{
		{Key: "apiVersion", Value: "kubelet.config.k8s.io/v1beta1"},
		{Key: "kind", Value: "KubeletConfiguration"},
	}
	return append(doc, fields...), nil
}

var (
	// nodeNameRE is compiled on first use: its 251-fold repetition takes
	// half a millisecond, at every start of the program otherwise.
	nodeNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`) })
	imageRepoRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
	sanRE       = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9.:*-]*$`)
)

// marshalDocs renders a multi-document YAML file.
func marshalDocs(docs ...any) ([]byte, error) {
	var b bytes.Buffer
	for i, d := range docs {
		out, err := yaml.MarshalWithOptions(d, yaml.IndentSequence(true))
		if err != nil {
			return nil, fmt.Errorf("render kubeadm configuration: %w", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(out)
	}
	return b.Bytes(), nil
}

// newToken returns a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}.
func newToken(r io.Reader) (string, error) {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 23)
	buf := make([]byte, 32)
	for len(out) < 23 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("generate a bootstrap token: %w", err)
		}
		for _, c := range buf {
			if len(out) == 6 {
				out = append(out, '.')
			}
			if len(out) == 23 {
				break
			}
			if int(c) < 252 { // 252 = 7*36: no bias
				out = append(out, chars[int(c)%36])
			}
		}
	}
	return string(out), nil
}

// newCertificateKey returns 32 random bytes in hex.
func newCertificateKey(r io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("generate a certificate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// CACertHash returns kubeadm's discovery hash of a PEM CA certificate:
// "sha256:" + the hex sha256 of its DER SubjectPublicKeyInfo.
func CACertHash(pemData []byte) (string, error) {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("no PEM certificate found")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse the CA certificate: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
