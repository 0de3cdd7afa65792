package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"strings"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/version"
	"github.com/sealflow/sealflow/lvscare/podspec"
)

// lvscareKind sets up the kernel virtual server VIP:PORT → masters on a
// worker: `rules` copies the sealflow binary and programs the rules once
// (before the worker joins through the VIP); `install` writes the static
// pod (or systemd unit) of the lvscare daemon that keeps them true (after
// the join: kubeadm wants an empty manifests directory).
func lvscareKind() *Kind {
	sums := &FileSums{}
	return &Kind{
		Name: "lvscare",
		Doc:  "program the virtual server VIP:PORT → masters once (phase rules) and install the lvscare daemon (phase install)",
		Params: []Param{
			{Name: "masters", Type: StringList, Required: true, Doc: "addresses of the masters (real servers)"},
			{Name: "vip", Type: String, Doc: "the virtual IP (default " + DefaultVIP + ")"},
			{Name: "port", Type: Int, Doc: "the API server port (default 6443)"},
			{Name: "phase", Type: String, Doc: "rules, install or both (default both)"},
			{Name: "mode", Type: String, Doc: "static-pod (default) or systemd"},
			{Name: "image", Type: String, Doc: "the static pod's image (default " + version.Repository + ":SEALFLOW_VERSION, which the package carries)"},
			{Name: "binary", Type: String, Doc: "the local sealflow binary copied to the host (default the running one)"},
			{Name: "health_path", Type: String, Doc: "the path probed on each master (default " + podspec.DefaultHealthPath + ")"},
			{Name: "health_schem", Type: String, Doc: "https (default), http or tcp"},
		},
		Rerunnable: true,
		New: func(p Params) (Step, error) {
			return newLvscare(p, defaultPaths(), sums)
		},
	}
}

type lvscareStep struct {
	care    podspec.Options
	rules   bool
	install bool
	systemd bool
	image   string
	binary  string
	paths   sysPaths
	sums    *FileSums
}

func newLvscare(p Params, paths sysPaths, sums *FileSums) (*lvscareStep, error) {
	s := &lvscareStep{paths: paths, sums: sums}
	switch ph, _ := p["phase"].(string); ph {
	case "", "both":
		s.rules, s.install = true, true
	case "rules":
		s.rules = true
	case "install":
		s.install = true
	default:
		return nil, fmt.Errorf("phase: %q: want rules, install or both", ph)
	}
	switch m, _ := p["mode"].(string); m {
	case "", "static-pod":
	case "systemd":
		s.systemd = true
	default:
		return nil, fmt.Errorf("mode: %q: want static-pod or systemd", m)
	}
	s.image, _ = p["image"].(string)
	s.binary, _ = p["binary"].(string)
	port := 6443
	if v, ok := p["port"].(int); ok && v != 0 {
		port = v
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port: %d is not a TCP port", port)
	}
	vipText, _ := p["vip"].(string)
	vip, err := netip.ParseAddr(orDefault(vipText, DefaultVIP))
	if err != nil {
		return nil, fmt.Errorf("vip: %q is not an IP address", vipText)
	}
	o := podspec.DefaultOptions()
	o.VS = netip.AddrPortFrom(vip, uint16(port))
	masters, _ := p["masters"].([]string)
	if len(masters) == 0 {
		return nil, fmt.Errorf("masters: empty; give the masters' addresses")
	}
	for _, m := range masters {
		rs, err := netip.ParseAddrPort(m)
		if err != nil {
			a, err2 := netip.ParseAddr(m)
			if err2 != nil {
				return nil, fmt.Errorf("masters: %q is not an IP address", m)
			}
			rs = netip.AddrPortFrom(a, uint16(port))
		}
		o.RS = append(o.RS, rs)
	}
	if hp, _ := p["health_path"].(string); hp != "" {
		o.Health.Path = hp
	}
	if hs, _ := p["health_schem"].(string); hs != "" {
		o.Health.Scheme = hs
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s.care = o
	if s.install {
		if _, err := s.rendered(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// target returns where the daemon's file goes.
func (s *lvscareStep) target() string {
	if s.systemd {
		return s.paths.Unit
	}
	return path.Join(s.paths.Kube, "manifests", path.Base(podspec.StaticPodPath))
}

// rendered returns the static pod manifest or the systemd unit.
func (s *lvscareStep) rendered() ([]byte, error) {
	if s.systemd {
		u, err := podspec.SystemdUnit(podspec.UnitOptions{Binary: s.paths.Bin, Care: s.care})
		return []byte(u), err
	}
	return podspec.StaticPod(podspec.PodOptions{Image: s.image, Care: s.care})
}

func (s *lvscareStep) Run(ctx context.Context, t *Target) (Outputs, error) {
	if s.rules || s.systemd {
		if err := s.uploadBinary(ctx, t); err != nil {
			return nil, err
		}
	}
	if s.rules {
		o := s.care
		o.RunOnce = true
		args := append([]string{"lvscare"}, o.Args()...)
		for i, a := range args {
			args[i] = transport.Quote(a)
		}
		script := `"$SF_BIN" ` + strings.Join(args, " ") + "\n"
		if err := run(ctx, t, fmt.Sprintf("program %s → %s once", s.care.VS, rsList(s.care.RS)), script, map[string]string{"SF_BIN": s.paths.Bin}); err != nil {
			return nil, err
		}
	}
	if s.install {
		if err := s.installDaemon(ctx, t); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func rsList(rs []netip.AddrPort) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, ",")
}

func (s *lvscareStep) uploadBinary(ctx context.Context, t *Target) error {
	bin := s.binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("binary: find the running sealflow binary: %w", err)
		}
		bin = exe
	}
	f, st, err := openRegular("binary", bin)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := s.sums.sum(f, st)
	if err != nil {
		return fmt.Errorf("sha256 of %s: %w", bin, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read %s: %w", bin, err)
	}
	if err := uploadFile(ctx, t, f, st.Size(), s.paths.Bin, 0o755, sum); err != nil {
		return fmt.Errorf("copy %s to %s: %w", bin, s.paths.Bin, err)
	}
	return nil
}

// systemdScript reloads systemd and (re)starts the unit: restarted when
// its file changed, started otherwise.
const systemdScript = `systemctl daemon-reload
systemctl enable "$SF_UNIT"
if [ -n "$SF_CHANGED" ]; then systemctl restart "$SF_UNIT"; else systemctl start "$SF_UNIT"; fi
`

func (s *lvscareStep) installDaemon(ctx context.Context, t *Target) error {
	data, err := s.rendered()
	if err != nil {
		return err
	}
	dst := s.target()
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	have, err := remoteSum(ctx, t, dst)
	if err != nil {
		return err
	}
	if have != want {
		logf(t, "write %s\n", dst)
		if err := t.Conn.Upload(ctx, bytes.NewReader(data), dst, 0o644, want); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	if !s.systemd {
		return nil
	}
	return run(ctx, t, "start "+podspec.UnitName, systemdScript,
		map[string]string{"SF_UNIT": path.Base(dst), "SF_CHANGED": boolText(have != want)})
}

// Done answers for phase install: the manifest (or unit) has the
// rendered content, and the unit is active.
func (s *lvscareStep) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	data, err := s.rendered()
	if err != nil {
		return false, nil, err
	}
	sum := sha256.Sum256(data)
	have, err := remoteSum(ctx, t, s.target())
	if err != nil || have != hex.EncodeToString(sum[:]) {
		return false, nil, err
	}
	if s.systemd {
		out, err := output(ctx, t, "check "+podspec.UnitName,
			`if systemctl is-active --quiet "$SF_UNIT"; then echo active; fi`, map[string]string{"SF_UNIT": path.Base(s.target())})
		if err != nil || strings.TrimSpace(out) != "active" {
			return false, nil, err
		}
	}
	return true, nil, nil
}

// CanCheck: the rules are simply programmed again (run-once is
// idempotent); only the install phase alone checks itself.
func (s *lvscareStep) CanCheck() bool { return s.install && !s.rules }

func (s *lvscareStep) Describe(t *Target) []string {
	var out []string
	if s.rules {
		out = append(out, fmt.Sprintf("copy sealflow to %s; program %s → %s once", s.paths.Bin, s.care.VS, rsList(s.care.RS)))
	}
	if s.install {
		out = append(out, "write "+s.target())
	}
	return out
}
