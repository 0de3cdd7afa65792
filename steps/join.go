package steps

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
)

// joinKind joins a master or a worker to the cluster with a
// JoinConfiguration file (the token and certificate key never go on a
// command line, except the key for v1.14, whose kubeadm has no field
// for it): sealflow's, or the user's kubeadm_config filled with what it
// leaves empty (see join_config.go).
func joinKind() *Kind {
	return &Kind{
		Name:       "join",
		Doc:        "join a master (role: master) or a worker (role: node) to the cluster with kubeadm join",
		LocalFiles: []string{"kubeadm_config"},
		Params: []Param{
			{Name: "role", Type: String, Required: true, Doc: "master or node"},
			{Name: "version", Type: String, Required: true, Doc: "the Kubernetes version (picks the kubeadm configuration API)"},
			{Name: "token", Type: String, Required: true, Doc: "the bootstrap token (kubeadm-init's output token)"},
			{Name: "ca_cert_hash", Type: String, Required: true, Doc: "sha256:... of the cluster CA (kubeadm-init's output ca_cert_hash)"},
			{Name: "certificate_key", Type: String, Doc: "the key of the uploaded certificates (masters; kubeadm-init's output certificate_key)"},
			{Name: "master_address", Type: String, Doc: "the first master's address (masters join through it)"},
			{Name: "endpoint", Type: String, Doc: "the control-plane endpoint (default " + ControlPlaneAddress + ")"},
			{Name: "vip", Type: String, Doc: "the virtual IP workers reach the masters through (default " + DefaultVIP + ")"},
			{Name: "advertise_address", Type: String, Doc: "the address this master's API server advertises (default the host's address)"},
			{Name: "node_name", Type: String, Doc: "the node's name (default the host's name)"},
			{Name: "ignore_preflight_errors", Type: StringList, Doc: "preflight checks whose errors are only warnings"},
			{Name: "skip_phases", Type: StringList, Doc: "kubeadm join phases to skip"},
			{Name: "kubeadm_config", Type: String, Doc: "a local kubeadm join configuration file (a JoinConfiguration in the version's API); sealflow fills only the discovery token, endpoint and CA hash, the node name and, for masters, the certificate key and advertise address, where the file leaves them empty"},
		},
		New: func(p Params) (Step, error) { return newJoin(p, defaultPaths()) },
	}
}

type join struct {
	master     bool
	version    kubeVersion
	jp         joinParams
	masterAddr string
	vip        string
	ignore     []string
	skip       []string
	paths      sysPaths
	user       *userJoinConfig // kubeadm_config, nil without one
}

// joinParams is what renderJoinConfig needs.
type joinParams struct {
	Version          kubeVersion
	Endpoint         string
	Token            string
	CACertHash       string
	CertificateKey   string // masters only
	ControlPlane     bool
	AdvertiseAddress string
	NodeName         string
}

func newJoin(p Params, paths sysPaths) (*join, error) {
	s := &join{paths: paths}
	switch r, _ := p["role"].(string); r {
	case "master":
		s.master = true
	case "node", "worker":
	default:
		return nil, fmt.Errorf("role: %q: want master or node", r)
	}
	v, _ := p["version"].(string)
	var err error
	if s.version, err = parseKubeVersion(v); err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	jp := &s.jp
	jp.Version, jp.ControlPlane = s.version, s.master
	jp.Endpoint, _ = p["endpoint"].(string)
	jp.Endpoint = orDefault(jp.Endpoint, ControlPlaneAddress)
	jp.Token, _ = p["token"].(string)
	jp.CACertHash, _ = p["ca_cert_hash"].(string)
	jp.CertificateKey, _ = p["certificate_key"].(string)
	jp.AdvertiseAddress, _ = p["advertise_address"].(string)
	jp.NodeName, _ = p["node_name"].(string)
	s.masterAddr, _ = p["master_address"].(string)
	vip, _ := p["vip"].(string)
	vip = orDefault(vip, DefaultVIP)
	if a, err := netip.ParseAddr(vip); err != nil || !a.Is4() {
		return nil, fmt.Errorf("vip: %q is not an IPv4 address", vip)
	} else {
		s.vip = a.String()
	}
	if s.master {
		a, err := netip.ParseAddr(s.masterAddr)
		if err != nil {
			return nil, fmt.Errorf("master_address: %q is not an IP address: give the first master's address", s.masterAddr)
		}
		s.masterAddr = a.String()
		if s.version.Minor >= 14 && jp.CertificateKey == "" {
			return nil, fmt.Errorf("certificate_key: a master joins with the key of the uploaded certificates (kubeadm-init's output certificate_key)")
		}
	}
	if s.ignore, err = flagList("ignore_preflight_errors", p); err != nil {
		return nil, err
	}
	if s.skip, err = flagList("skip_phases", p); err != nil {
		return nil, err
	}
	if _, err := renderJoinConfig(s.jp); err != nil {
		return nil, err
	}
	// The file is read when the task is built, as it starts: a missing or
	// wrong file stops it before anything on the host changes.
	if f, _ := p["kubeadm_config"].(string); f != "" {
		if s.user, err = readUserJoinConfig(f, s.version); err != nil {
			return nil, err
		}
		if _, _, _, err := s.user.merged(s.jp); err != nil {
			return nil, err
		}
	}
	return s, nil
}

type (
	kcDiscoveryToken struct {
		Token             string   `yaml:"token"`
		APIServerEndpoint string   `yaml:"apiServerEndpoint"`
		CACertHashes      []string `yaml:"caCertHashes"`
	}
	kcDiscovery struct {
		BootstrapToken kcDiscoveryToken `yaml:"bootstrapToken"`
	}
	kcControlPlane struct {
		LocalAPIEndpoint kcEndpoint `yaml:"localAPIEndpoint"`
		CertificateKey   string     `yaml:"certificateKey,omitempty"`
	}
	kcJoin struct {
		APIVersion       string             `yaml:"apiVersion"`
		Kind             string             `yaml:"kind"`
		Discovery        kcDiscovery        `yaml:"discovery"`
		NodeRegistration kcNodeRegistration `yaml:"nodeRegistration"`
		ControlPlane     *kcControlPlane    `yaml:"controlPlane,omitempty"`
	}
)

var endpointRE = regexp.MustCompile(`^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$`)

// checkJoinParams checks the values that go into a JoinConfiguration.
func checkJoinParams(p joinParams) error {
	if !endpointRE.MatchString(p.Endpoint) {
		return fmt.Errorf("endpoint: %q is not HOST:PORT", p.Endpoint)
	}
	if !tokenRE.MatchString(p.Token) {
		return fmt.Errorf("token: not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})")
	}
	if !caHash.MatchString(p.CACertHash) {
		return fmt.Errorf("ca_cert_hash: %q is not sha256: and 64 hex digits", p.CACertHash)
	}
	if p.CertificateKey != "" && !keyRE.MatchString(p.CertificateKey) {
		return fmt.Errorf("certificate_key: not 64 hex digits")
	}
	if p.AdvertiseAddress != "" {
		if _, err := netip.ParseAddr(p.AdvertiseAddress); err != nil {
			return fmt.Errorf("advertise_address: %q is not an IP address", p.AdvertiseAddress)
		}
	}
	if p.NodeName != "" && !nodeNameRE().MatchString(p.NodeName) {
		return fmt.Errorf("node_name: %q is not a valid node name (lowercase letters, digits, '-' and '.')", p.NodeName)
	}
	return nil
}

// renderJoinConfig renders the JoinConfiguration in the configuration
// API of the version.
func renderJoinConfig(p joinParams) ([]byte, error) {
	if err := checkJoinParams(p); err != nil {
		return nil, err
	}
	var adv string
	if p.AdvertiseAddress != "" {
		adv = netip.MustParseAddr(p.AdvertiseAddress).String()
	}
	j := kcJoin{
		APIVersion: p.Version.APIVersion(), Kind: "JoinConfiguration",
		Discovery: kcDiscovery{BootstrapToken: kcDiscoveryToken{
			Token: p.Token, APIServerEndpoint: p.Endpoint, CACertHashes: []string{p.CACertHash},
		}},
		NodeRegistration: kcNodeRegistration{Name: p.NodeName},
	}
	if p.ControlPlane {
		j.ControlPlane = &kcControlPlane{LocalAPIEndpoint: kcEndpoint{AdvertiseAddress: adv, BindPort: apiserverPort}}
		if p.Version.keyInConfig() {
			j.ControlPlane.CertificateKey = p.CertificateKey
		}
	}
	return marshalDocs(j)
}

func (s *join) forHost(t *Target) joinParams {
	jp := s.jp
	if jp.AdvertiseAddress == "" && s.master {
		if a, err := netip.ParseAddr(t.Host.Address); err == nil {
			jp.AdvertiseAddress = a.String()
		}
	}
	if jp.NodeName == "" && t.Host.Name != t.Host.Address && nodeNameRE().MatchString(t.Host.Name) {
		jp.NodeName = t.Host.Name
	}
	return jp
}

func (s *join) env() map[string]string {
	dir := path.Join(s.paths.State, "kubeadm")
	return map[string]string{
		"SF_KUBE": s.paths.Kube, "SF_DIR": dir, "SF_CONFIG": path.Join(dir, "join-config.yaml"),
		"SF_KEY": s.jp.CertificateKey, "SF_MASTER": boolText(s.master),
		"SF_SKIP": strings.Join(s.skip, ","), "SF_IGNORE": strings.Join(s.ignore, ","),
	}
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// joinedScript prints "joined" when the node's kubelet has its
// kubeconfig (and, on a master, the API server its manifest).
const joinedScript = `[ -f "$SF_KUBE/kubelet.conf" ] || exit 0
if [ -n "$SF_MASTER" ]; then [ -f "$SF_KUBE/manifests/kube-apiserver.yaml" ] || exit 0; fi
echo joined
`

// finalLines is the apiserver hosts entry once joined: a master talks to
// its own API server, a worker to the VIP.
func (s *join) finalLines() []string {
	if s.master {
		return []string{"127.0.0.1 " + apiserverName}
	}
	return []string{s.vip + " " + apiserverName}
}

func (s *join) joined(ctx context.Context, t *Target) (bool, error) {
	out, err := output(ctx, t, "check whether the node has joined", joinedScript, s.env())
	return strings.TrimSpace(out) == "joined", err
}

// config renders the host's JoinConfiguration, or fills the user's.
func (s *join) config(t *Target) ([]byte, error) {
	if s.user == nil {
		return renderJoinConfig(s.forHost(t))
	}
	cfg, filled, secrets, err := s.user.merged(s.forHost(t))
	if err != nil {
		return nil, err
	}
	t.Secret(secrets...)
	if len(filled) == 0 {
		logf(t, "kubeadm_config %s: used as given (it sets every field sealflow fills)\n", s.user.path)
	} else {
		logf(t, "kubeadm_config %s: sealflow filled %s\n", s.user.path, strings.Join(filled, ", "))
	}
	return cfg, nil
}

func (s *join) Run(ctx context.Context, t *Target) (Outputs, error) {
	t.Secret(s.jp.Token, s.jp.CertificateKey)
	env := s.env()
	b := hostsBlock{file: s.paths.Hosts, name: apiserverBlock}
	joined, err := s.joined(ctx, t)
	if err != nil {
		return nil, err
	}
	if !joined {
		cfg, err := s.config(t)
		if err != nil {
			return nil, err
		}
		first := s.finalLines()
		if s.master {
			first = []string{s.masterAddr + " " + apiserverName}
		}
		if err := b.write(ctx, t, first); err != nil {
			return nil, err
		}
		if err := run(ctx, t, "create "+env["SF_DIR"], privateDirScript, env); err != nil {
			return nil, err
		}
		defer removeFiles(ctx, t, env, env["SF_CONFIG"])
		if err := upload(ctx, t, cfg, env["SF_CONFIG"]); err != nil {
			return nil, err
		}
		script := flagsScript
		if s.master && s.version.Minor == 14 {
			script += `set -- "$@" --certificate-key "$SF_KEY"` + "\n"
		}
		script += `kubeadm join --config "$SF_CONFIG" "$@"` + "\n"
		if err := run(ctx, t, "kubeadm join", script, env); err != nil {
			return nil, err
		}
	} else {
		logf(t, "already joined: finishing the host's settings\n")
	}
	if err := b.write(ctx, t, s.finalLines()); err != nil {
		return nil, err
	}
	if s.master {
		if err := run(ctx, t, "copy admin.conf to ~/.kube/config", kubeconfigScript, env); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// Done reports the task done when the node has joined and its hosts
// entry (and, on a master, ~/.kube/config) is in its final state.
func (s *join) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	joined, err := s.joined(ctx, t)
	if err != nil || !joined {
		return false, nil, err
	}
	b := hostsBlock{file: s.paths.Hosts, name: apiserverBlock}
	n, lines, err := b.read(ctx, t)
	if err != nil || n != 1 || !equalLines(lines, s.finalLines()) {
		return false, nil, err
	}
	if s.master {
		out, err := output(ctx, t, "check ~/.kube/config", `if [ -f "$HOME/.kube/config" ]; then echo yes; fi`, nil)
		if err != nil || strings.TrimSpace(out) != "yes" {
			return false, nil, err
		}
	}
	return true, nil, nil
}

func (s *join) Describe(t *Target) []string {
	if s.user != nil {
		with := "kubeadm join with " + s.user.path + " (the discovery, node name"
		if s.master {
			with += ", certificate key and advertise address"
		}
		with += " filled where it leaves them empty)"
		if s.master {
			return []string{fmt.Sprintf("%s → %s; %s as a control-plane node; then %s → 127.0.0.1", apiserverName, s.masterAddr, with, apiserverName)}
		}
		return []string{fmt.Sprintf("%s → %s (VIP); %s as a worker", apiserverName, s.vip, with)}
	}
	if s.master {
		return []string{fmt.Sprintf("%s → %s; kubeadm join as a control-plane node; then %s → 127.0.0.1", apiserverName, s.masterAddr, apiserverName)}
	}
	return []string{fmt.Sprintf("%s → %s (VIP); kubeadm join as a worker", apiserverName, s.vip)}
}
