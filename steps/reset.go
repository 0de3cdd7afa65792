package steps

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// resetKind undoes what the Kubernetes kinds did on a host.
func resetKind() *Kind {
	return &Kind{
		Name: "reset",
		Doc: "undo the Kubernetes install on the host: kubeadm reset, the package's clean.sh, lvscare's rules, " +
			"daemon and binary, the /etc/hosts blocks, the ~/.kube/config it wrote (the user's own is put back), /etc/kubernetes, /var/lib/{etcd,kubelet,sealflow} and the package",
		Params: []Param{
			{Name: "package_dir", Type: String, Doc: "the package directory (its shell/clean.sh is run when present)"},
			{Name: "remove_package", Type: Bool, Doc: "remove package_dir too (default true)"},
			{Name: "files", Type: StringList, Doc: "more files to remove, e.g. the distributed tarball"},
			{Name: "vip", Type: String, Doc: "the virtual IP whose rules are removed (default " + DefaultVIP + ")"},
			{Name: "port", Type: Int, Doc: "the virtual server's port (default 6443)"},
			{Name: "hosts_block", Type: String, Doc: `the hosts step's block to remove (default "sealflow")`},
		},
		Rerunnable: true,
		New:        func(p Params) (Step, error) { return newReset(p, defaultPaths()) },
	}
}

type reset struct {
	pkg       string
	removePkg bool
	files     []string
	vs        netip.AddrPort
	block     string
	paths     sysPaths
}

func newReset(p Params, paths sysPaths) (*reset, error) {
	s := &reset{paths: paths, removePkg: true, block: "sealflow"}
	s.pkg, _ = p["package_dir"].(string)
	if s.pkg != "" {
		if err := checkRemotePath("package_dir", s.pkg); err != nil {
			return nil, err
		}
		s.pkg = path.Clean(s.pkg)
	}
	if v, ok := p["remove_package"].(bool); ok {
		s.removePkg = v
	}
	s.files, _ = p["files"].([]string)
	for _, f := range s.files {
		if err := checkRemotePath("files", f); err != nil {
			return nil, err
		}
	}
	vipText, _ := p["vip"].(string)
	vip, err := netip.ParseAddr(orDefault(vipText, DefaultVIP))
	if err != nil {
		return nil, fmt.Errorf("vip: %q is not an IP address", vipText)
	}
	port := 6443
	if v, ok := p["port"].(int); ok && v != 0 {
		port = v
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port: %d is not a TCP port", port)
	}
	s.vs = netip.AddrPortFrom(vip, uint16(port))
	if b, _ := p["hosts_block"].(string); b != "" {
		s.block = b
	}
	if !blockName.MatchString(s.block) {
		return nil, fmt.Errorf("hosts_block: %q: use letters, digits, '.', '_' and '-'", s.block)
	}
	return s, nil
}

// resetScript removes everything, going on past failures (each is
// reported; the script fails at the end if any step did).
const resetScript = runFileFunc + `set +e
rc=0
warn() { echo "reset: $*" >&2; rc=1; }
# ~/.kube: remove only the config sealflow wrote (the cluster's admin.conf,
# or the file whose sha256 it recorded) and put back the user's own from
# config.sealflow-backup; every other file there stays.
k=$HOME/.kube
if [ -f "$k/config" ]; then
	s=$(sha256sum <"$k/config"); s=${s%% *}
	if cmp -s -- "$SF_KUBE/admin.conf" "$k/config" || [ "$s" = "$(cat -- "$k/config.sealflow-sha256" 2>/dev/null)" ]; then
		rm -f -- "$k/config" || warn "could not remove $k/config"
	fi
fi
rm -f -- "$k/config.sealflow-sha256"
# kubectl's caches (discovery, http) are rebuilt on demand.
rm -rf -- "$k/cache" "$k/http-cache"
if [ -f "$k/config.sealflow-backup" ] && [ ! -e "$k/config" ]; then
	mv -- "$k/config.sealflow-backup" "$k/config" || warn "could not put back $k/config from $k/config.sealflow-backup"
fi
rmdir -- "$k" 2>/dev/null
if command -v kubeadm >/dev/null 2>&1; then
	kubeadm reset -f || warn "kubeadm reset -f failed (files are removed below)"
fi
if [ -f "$SF_UNIT" ]; then
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now "$(basename -- "$SF_UNIT")" || warn "could not stop $(basename -- "$SF_UNIT")"
	fi
	rm -f -- "$SF_UNIT" || warn "could not remove $SF_UNIT"
	if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload; fi
fi
rm -f -- "$SF_MANIFEST" || warn "could not remove $SF_MANIFEST"
if [ -n "$SF_PKG" ] && [ -f "$SF_PKG/shell/clean.sh" ]; then
	(cd -- "$SF_PKG/shell" && runfile ./clean.sh) || warn "$SF_PKG/shell/clean.sh failed"
fi
# lvscare's rules go once its daemon is stopped (above: its unit, or the
# static pod processes with clean.sh), or the daemon would put them back.
if [ -x "$SF_BIN" ]; then
	# Nothing to clean is not an error.
	"$SF_BIN" lvscare clean --vs "$SF_VS" || true
fi
rm -rf -- "$SF_KUBE" "$SF_STATE" || warn "could not remove the Kubernetes directories"
# A state directory that is a mount point (its own disk) is emptied, not removed.
for d in "$SF_ETCD" "$SF_KUBELET"; do
	if mountpoint -q -- "$d" 2>/dev/null; then
		find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + || warn "could not empty $d"
	else
		rm -rf -- "$d" || warn "could not remove $d"
	fi
done
rm -f -- "$SF_BIN" || warn "could not remove $SF_BIN"
# kubeadm makes the kubelet's volume plugin directory; keep parents that hold more.
rmdir -p --ignore-fail-on-non-empty /usr/libexec/kubernetes/kubelet-plugins/volume/exec 2>/dev/null
if [ -n "$SF_PKG" ] && [ -n "$SF_REMOVE_PKG" ]; then
	rm -rf -- "$SF_PKG" || warn "could not remove $SF_PKG"
	rm -f -- "$SF_PKG/$SF_UNTAR" "$(dirname -- "$SF_PKG")/$SF_UNTAR"
fi
if [ -n "$SF_FILES" ]; then
	printf '%s\n' "$SF_FILES" | while IFS= read -r f; do rm -f -- "$f" || echo "reset: could not remove $f" >&2; done
fi
exit "$rc"
`

func (s *reset) env() map[string]string {
	return map[string]string{
		"SF_BIN": s.paths.Bin, "SF_VS": s.vs.String(), "SF_UNIT": s.paths.Unit,
		"SF_MANIFEST": path.Join(s.paths.Kube, "manifests", path.Base(podspec.StaticPodPath)),
		"SF_PKG":      s.pkg, "SF_REMOVE_PKG": boolText(s.removePkg), "SF_UNTAR": untarMarker,
		"SF_KUBE": s.paths.Kube, "SF_ETCD": s.paths.Etcd, "SF_KUBELET": s.paths.Kubelet, "SF_STATE": s.paths.State,
		"SF_FILES": strings.Join(s.files, "\n"),
	}
}

func (s *reset) Run(ctx context.Context, t *Target) (Outputs, error) {
	if err := run(ctx, t, "reset the host", resetScript, s.env()); err != nil {
		return nil, err
	}
	for _, name := range []string{s.block, apiserverBlock} {
		if err := (hostsBlock{file: s.paths.Hosts, name: name}).remove(ctx, t); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func (s *reset) Describe(t *Target) []string {
	out := []string{"kubeadm reset -f", fmt.Sprintf("sealflow lvscare clean --vs %s", s.vs)}
	if s.pkg != "" {
		out = append(out, "run "+s.pkg+"/shell/clean.sh")
	}
	out = append(out, fmt.Sprintf("remove the hosts blocks %q and %q, the ~/.kube/config sealflow wrote, %s, %s, %s, %s, %s",
		s.block, apiserverBlock, s.paths.Kube, s.paths.Etcd, s.paths.Kubelet, s.paths.State, s.paths.Bin))
	if s.pkg != "" && s.removePkg {
		out = append(out, "remove "+s.pkg)
	}
	return out
}
