package steps

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
)

// kubeadmInitKind creates the cluster on the first master. sealflow makes
// the bootstrap token and certificate key itself and computes the CA hash
// from the CA certificate: nothing is read from kubeadm's screen output.
// On a host that already runs the control plane it makes a fresh token,
// uploads the certificates again and returns the outputs, so running it
// again is safe.
func kubeadmInitKind() *Kind {
	return &Kind{
		Name:       "kubeadm-init",
		Doc:        "create the cluster with kubeadm init on the first master (or, when it runs already, make a fresh join token and upload the certificates again)",
		LocalFiles: []string{"kubeadm_config"},
		Params: []Param{
			{Name: "version", Type: String, Required: true, Doc: "the Kubernetes version, e.g. v1.29.3 (picks the kubeadm configuration API)"},
			{Name: "masters", Type: StringList, Required: true, Doc: "addresses of every master (certificate SANs)"},
			{Name: "vip", Type: String, Doc: "the virtual IP workers reach the masters through (default " + DefaultVIP + ")"},
			{Name: "kubeadm_config", Type: String, Doc: "a local kubeadm configuration file used as given instead of the rendered one"},
			{Name: "ignore_preflight_errors", Type: StringList, Doc: "preflight checks whose errors are only warnings"},
			{Name: "skip_phases", Type: StringList, Doc: "kubeadm init phases to skip"},
			{Name: "image_repository", Type: String, Doc: "where the control-plane images come from"},
			{Name: "extra_sans", Type: StringList, Doc: "more names and addresses for the API server certificate"},
			{Name: "pod_cidr", Type: String, Doc: "the pod network (default " + DefaultPodCIDR + ")"},
			{Name: "svc_cidr", Type: String, Doc: "the service network (default " + DefaultSvcCIDR + ")"},
			{Name: "advertise_address", Type: String, Doc: "the address the API server advertises (default the host's address)"},
			{Name: "node_name", Type: String, Doc: "the node's name (default the host's name)"},
			{Name: "proxy_mode", Type: String, Doc: "kube-proxy's mode: ipvs (default, the VIP excluded), nftables or iptables"},
			{Name: "proxy_config", Type: String, Doc: "more KubeProxyConfiguration fields as a YAML mapping (e.g. {conntrack: {maxPerCore: 0}}); mode is proxy_mode's"},
			{Name: "kubelet_config", Type: String, Doc: "KubeletConfiguration fields as a YAML mapping, for every node (e.g. {failCgroupV1: false})"},
			{Name: "allow_vip_in_cidr", Type: Bool, Doc: "accept a vip inside pod_cidr or svc_cidr: only for a cluster built so already (the seed's 10.103.97.2)"},
		},
		Rerunnable: true,
		LoadCheck:  true,
		Secret:     []string{"token", "certificate_key"},
		New: func(p Params) (Step, error) {
			return newKubeadmInit(p, defaultPaths(), rand.Reader)
		},
	}
}

type kubeadmInit struct {
	cfg        KubeadmParams
	version    kubeVersion
	userConfig string
	ignore     []string
	skip       []string
	paths      sysPaths
	rand       io.Reader
	// readyTries bounds the wait for /readyz of an existing control plane
	// (2 s apart).
	readyTries int
}

// flagListRE: values of --ignore-preflight-errors and --skip-phases.
var flagListRE = regexp.MustCompile(`^[A-Za-z0-9_./-]+$`)

func newKubeadmInit(p Params, paths sysPaths, r io.Reader) (*kubeadmInit, error) {
	s := &kubeadmInit{paths: paths, rand: r, readyTries: 12}
	c := &s.cfg
	c.Version, _ = p["version"].(string)
	c.Masters, _ = p["masters"].([]string)
	c.VIP, _ = p["vip"].(string)
	c.ImageRepository, _ = p["image_repository"].(string)
	c.ExtraSANs, _ = p["extra_sans"].([]string)
	c.PodCIDR, _ = p["pod_cidr"].(string)
	c.SvcCIDR, _ = p["svc_cidr"].(string)
	c.AdvertiseAddress, _ = p["advertise_address"].(string)
	c.NodeName, _ = p["node_name"].(string)
	c.ProxyMode, _ = p["proxy_mode"].(string)
	c.KubeletConfig, _ = p["kubelet_config"].(string)
	c.ProxyConfig, _ = p["proxy_config"].(string)
	c.AllowVIPInCIDR, _ = p["allow_vip_in_cidr"].(bool)
	s.userConfig, _ = p["kubeadm_config"].(string)
	var err error
	if s.version, err = parseKubeVersion(c.Version); err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	if s.ignore, err = flagList("ignore_preflight_errors", p); err != nil {
		return nil, err
	}
	if s.skip, err = flagList("skip_phases", p); err != nil {
		return nil, err
	}
	// Render once with placeholder secrets to report bad parameters when
	// the plan is loaded.
	probe := *c
	probe.Token, probe.CertificateKey = "abcdef.0123456789abcdef", strings.Repeat("0", 64)
	if _, err := RenderKubeadmConfig(probe); err != nil {
		return nil, err
	}
	return s, nil
}

func flagList(name string, p Params) ([]string, error) {
	l, _ := p[name].([]string)
	for _, v := range l {
		if !flagListRE.MatchString(v) {
			return nil, fmt.Errorf("%s: %q: use letters, digits, '.', '_', '-' and '/'", name, v)
		}
	}
	return l, nil
}

// forHost fills the host's defaults: its address (when an IP) and its
// name (when it is not just the address).
func (s *kubeadmInit) forHost(t *Target, token, key string) KubeadmParams {
	c := s.cfg
	c.Token, c.CertificateKey = token, key
	if c.AdvertiseAddress == "" {
		if a, err := netip.ParseAddr(t.Host.Address); err == nil {
			c.AdvertiseAddress = a.String()
		}
	}
	if c.NodeName == "" && t.Host.Name != t.Host.Address && nodeNameRE().MatchString(t.Host.Name) {
		c.NodeName = t.Host.Name
	}
	return c
}

// initStateScript prints absent (no admin.conf), ready (the API server
// answers /readyz) or, after $SF_TRIES tries with backoff (1 s doubling to
// at most 30 s: a control plane slow to come back after a restart gets
// minutes), notready and the seconds waited; "etcd" follows when etcd
// holds data ($SF_ETCD/member).
const initStateScript = `a="$SF_KUBE/admin.conf"
if [ ! -f "$a" ]; then echo absent; exit 0; fi
i=0 d=1 w=0
while [ "$i" -lt "$SF_TRIES" ]; do
	if [ "$i" -gt 0 ]; then
		sleep "$d"
		w=$((w + d)) d=$((d * 2))
		[ "$d" -le 30 ] || d=30
	fi
	if out=$(kubectl --kubeconfig "$a" --request-timeout=10s get --raw /readyz 2>/dev/null) && [ "$out" = ok ]; then
		echo ready
		exit 0
	fi
	i=$((i + 1))
done
if [ -d "$SF_ETCD/member" ]; then echo "notready $w etcd"; else echo "notready $w"; fi
`

// privateDirScript makes the 0700 directory the configuration files
// (which hold the token) are uploaded into.
const privateDirScript = `mkdir -p -- "$SF_DIR"
chmod 0700 "$SF_DIR"
`

// flagsScript turns $SF_SKIP and $SF_IGNORE into kubeadm flags.
const flagsScript = `set --
if [ -n "$SF_SKIP" ]; then set -- "$@" --skip-phases="$SF_SKIP"; fi
if [ -n "$SF_IGNORE" ]; then set -- "$@" --ignore-preflight-errors="$SF_IGNORE"; fi
`

// kubeconfigScript copies admin.conf to ~/.kube/config. A config the
// user had (one sealflow did not write: its sha256 is not the one in
// config.sealflow-sha256) is kept as config.sealflow-backup, for reset to
// put back.
const kubeconfigScript = `k=$HOME/.kube
c=$k/config
mkdir -p -- "$k"
if [ -f "$c" ] && ! cmp -s -- "$SF_KUBE/admin.conf" "$c"; then
	s=$(sha256sum <"$c"); s=${s%% *}
	if [ "$s" != "$(cat -- "$k/config.sealflow-sha256" 2>/dev/null)" ] && [ ! -e "$k/config.sealflow-backup" ]; then
		cp -p -- "$c" "$k/config.sealflow-backup"
	fi
fi
(umask 077 && cp -- "$SF_KUBE/admin.conf" "$c.sealflow-tmp")
chmod 0600 "$c.sealflow-tmp"
mv -f -- "$c.sealflow-tmp" "$c"
s=$(sha256sum <"$c"); echo "${s%% *}" >"$k/config.sealflow-sha256"
`

func (s *kubeadmInit) Run(ctx context.Context, t *Target) (Outputs, error) {
	token, err := newToken(s.rand)
	if err != nil {
		return nil, err
	}
	key, err := newCertificateKey(s.rand)
	if err != nil {
		return nil, err
	}
	// Before anything can print them (kubeadm prints the join command).
	t.Secret(token, key)
	cfg, err := RenderKubeadmConfig(s.forHost(t, token, key))
	if err != nil {
		return nil, err
	}
	var user []byte
	if s.userConfig != "" {
		if user, err = os.ReadFile(s.userConfig); err != nil {
			return nil, fmt.Errorf("kubeadm_config: %w", err)
		}
	}

	dir := path.Join(s.paths.State, "kubeadm")
	cfgPath := path.Join(dir, "init-config.yaml")
	userPath := path.Join(dir, "user-config.yaml")
	env := map[string]string{
		"SF_KUBE": s.paths.Kube, "SF_DIR": dir, "SF_CONFIG": cfgPath, "SF_KEY": key,
		"SF_SKIP": strings.Join(s.skip, ","), "SF_IGNORE": strings.Join(s.ignore, ","),
		"SF_TRIES": fmt.Sprint(s.readyTries), "SF_ETCD": s.paths.Etcd,
	}

	state, err := output(ctx, t, "check whether the control plane runs", initStateScript, env)
	if err != nil {
		return nil, err
	}
	state = strings.TrimSpace(state)
	if f := strings.Fields(state); len(f) >= 2 && f[0] == "notready" {
		waited := f[1] + "s"
		if len(f) == 3 && f[2] == "etcd" {
			// A master with cluster data: reset would destroy it.
			return nil, fmt.Errorf("%s/admin.conf exists and etcd holds data (%s/member), but the API server did not answer /readyz within %s: "+
				"the control plane is slow to start or down. Do not reset this host: that deletes the cluster's data. "+
				"Look at the kubelet and the static pods (journalctl -u kubelet, crictl ps -a), then run again", s.paths.Kube, s.paths.Etcd, waited)
		}
		return nil, fmt.Errorf("%s/admin.conf exists but the API server did not answer /readyz within %s and etcd holds no data: "+
			"a kubeadm init was interrupted; reset this host (the reset step) and run again", s.paths.Kube, waited)
	}
	if state != "absent" && state != "ready" {
		return nil, fmt.Errorf("check whether the control plane runs: the host printed %q", firstLine(state))
	}

	if err := run(ctx, t, "create "+dir, privateDirScript, env); err != nil {
		return nil, err
	}
	defer removeFiles(ctx, t, env, cfgPath, userPath)
	if err := upload(ctx, t, cfg, cfgPath); err != nil {
		return nil, err
	}
	// Masters (and kubeadm itself) reach the control plane by name.
	b := hostsBlock{file: s.paths.Hosts, name: apiserverBlock}
	if err := b.write(ctx, t, []string{"127.0.0.1 " + apiserverName}); err != nil {
		return nil, err
	}
	if state == "absent" {
		initEnv := env
		if user != nil {
			if err := upload(ctx, t, user, userPath); err != nil {
				return nil, err
			}
			initEnv = mergeEnv(env, map[string]string{"SF_CONFIG": userPath})
		}
		script := flagsScript + "kubeadm init --config \"$SF_CONFIG\" " + s.version.uploadCertsFlags() + " \"$@\"\n"
		if err := run(ctx, t, "kubeadm init", script, initEnv); err != nil {
			return nil, err
		}
	}
	if state == "ready" || user != nil {
		logf(t, "control plane runs: creating a fresh bootstrap token and uploading the certificates again\n")
		if err := s.refresh(ctx, t, env); err != nil {
			return nil, err
		}
	}
	if err := run(ctx, t, "copy admin.conf to ~/.kube/config", kubeconfigScript, env); err != nil {
		return nil, err
	}
	hash, err := readCAHash(ctx, t, s.paths.Kube)
	if err != nil {
		return nil, err
	}
	return Outputs{
		"token":           token,
		"certificate_key": key,
		"ca_cert_hash":    hash,
		"join_endpoint":   ControlPlaneAddress,
	}, nil
}

// refresh creates the token of the rendered configuration and uploads
// the certificates encrypted with its key. Their stdout, which shows the
// secrets, is dropped.
func (s *kubeadmInit) refresh(ctx context.Context, t *Target, env map[string]string) error {
	if err := runTo(ctx, t, "kubeadm token create", `kubeadm token create --config "$SF_CONFIG"`, env, io.Discard, t.Log); err != nil {
		return err
	}
	flags := s.version.uploadCertsFlags()
	if flags == "" {
		logf(t, "kubeadm %s cannot upload certificates: control-plane joins need them copied by hand\n", s.version.Text)
		return nil
	}
	return runTo(ctx, t, "kubeadm init phase upload-certs",
		"kubeadm init phase upload-certs "+flags+` --config "$SF_CONFIG"`, env, io.Discard, t.Log)
}

// removeFiles removes the configuration files, even when ctx has ended.
func removeFiles(ctx context.Context, t *Target, env map[string]string, files ...string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	e := mergeEnv(env, map[string]string{"SF_FILES": strings.Join(files, "\n")})
	if err := run(cctx, t, "remove the kubeadm configuration files", `printf '%s\n' "$SF_FILES" | while IFS= read -r f; do rm -f -- "$f"; done`, e); err != nil {
		logf(t, "warning: %v\n", err)
	}
}

func (s *kubeadmInit) Describe(t *Target) []string {
	what := "kubeadm init (" + s.version.APIVersion() + " configuration)"
	if s.userConfig != "" {
		what = "kubeadm init --config " + s.userConfig
	}
	return []string{what + " with a generated bootstrap token and certificate key; copy admin.conf to ~/.kube/config"}
}

// readCAHash reads the cluster CA back from the host and hashes it.
func readCAHash(ctx context.Context, t *Target, kubeDir string) (string, error) {
	ca := path.Join(kubeDir, "pki", "ca.crt")
	pemText, err := output(ctx, t, "read "+ca, `cat -- "$SF_CA"`, map[string]string{"SF_CA": ca})
	if err != nil {
		return "", err
	}
	h, err := CACertHash([]byte(pemText))
	if err != nil {
		return "", fmt.Errorf("%s: %w", ca, err)
	}
	return h, nil
}
