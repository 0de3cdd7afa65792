package podspec

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/sealflow/sealflow/internal/version"
)

// Where the manifests go and what they run.
const (
	StaticPodPath = "/etc/kubernetes/manifests/kube-lvscare.yaml"
	DefaultBinary = "/usr/local/bin/sealflow"
	UnitName      = "lvscare.service"
)

// PodOptions describes the static pod that runs the daemon on a worker.
type PodOptions struct {
	// Image holds the sealflow binary (on PATH); when empty, the image of
	// this sealflow's version (an offline package carries it).
	Image string
	Care  Options
}

type podManifest struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   podMeta `yaml:"metadata"`
	Spec       podSpec `yaml:"spec"`
}

type podMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type podSpec struct {
	HostNetwork       bool           `yaml:"hostNetwork"`
	PriorityClassName string         `yaml:"priorityClassName"`
	Containers        []podContainer `yaml:"containers"`
	Volumes           []podVolume    `yaml:"volumes"`
}

type podContainer struct {
	Name            string           `yaml:"name"`
	Image           string           `yaml:"image"`
	ImagePullPolicy string           `yaml:"imagePullPolicy"`
	Command         []string         `yaml:"command"`
	SecurityContext podSecurity      `yaml:"securityContext"`
	VolumeMounts    []podVolumeMount `yaml:"volumeMounts"`
}

type podSecurity struct {
	Privileged bool `yaml:"privileged"`
}

type podVolumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type podVolume struct {
	Name     string      `yaml:"name"`
	HostPath podHostPath `yaml:"hostPath"`
}

type podHostPath struct {
	Path string `yaml:"path"`
	Type string `yaml:"type"`
}

// StaticPod renders the kube-lvscare static pod manifest (for
// StaticPodPath): host network, privileged, running
// `sealflow lvscare care --vs ... --rs ...`.
func StaticPod(o PodOptions) ([]byte, error) {
	if err := o.Care.withDefaults().Validate(); err != nil {
		return nil, fmt.Errorf("lvscare static pod: %w", err)
	}
	if o.Care.RunOnce {
		return nil, fmt.Errorf("lvscare static pod: --run-once makes no sense in a pod that is restarted")
	}
	image := o.Image
	if image == "" {
		image = version.Image()
	}
	if strings.ContainsAny(image, " \t\n") {
		return nil, fmt.Errorf("lvscare static pod: image %q has white space", image)
	}
	c := podContainer{
		Name: "kube-lvscare", Image: image, ImagePullPolicy: "IfNotPresent",
		Command:         append([]string{"sealflow", "lvscare"}, o.Care.Args()...),
		SecurityContext: podSecurity{Privileged: true},
		VolumeMounts:    []podVolumeMount{{Name: "lib-modules", MountPath: "/lib/modules", ReadOnly: true}},
	}
	vols := []podVolume{{Name: "lib-modules", HostPath: podHostPath{Path: "/lib/modules", Type: "Directory"}}}
	// The host's lock and backend pin: a second daemon on the host, and
	// the rules phase that ran before the pod, see the same files.
	lockDir := o.Care.withDefaults().LockDir
	c.VolumeMounts = append(c.VolumeMounts, podVolumeMount{Name: "lvscare-state", MountPath: lockDir})
	vols = append(vols, podVolume{Name: "lvscare-state", HostPath: podHostPath{Path: lockDir, Type: "DirectoryOrCreate"}})
	if ca := o.Care.Health.CAFile; ca != "" {
		dir := path.Dir(ca)
		c.VolumeMounts = append(c.VolumeMounts, podVolumeMount{Name: "health-ca", MountPath: dir, ReadOnly: true})
		vols = append(vols, podVolume{Name: "health-ca", HostPath: podHostPath{Path: dir, Type: "Directory"}})
	}
	pod := podManifest{
		APIVersion: "v1", Kind: "Pod",
		Metadata: podMeta{Name: "kube-lvscare", Namespace: "kube-system",
			Labels: map[string]string{"component": "kube-lvscare", "tier": "control-plane"}},
		Spec: podSpec{HostNetwork: true, PriorityClassName: "system-node-critical",
			Containers: []podContainer{c}, Volumes: vols},
	}
	out, err := yaml.MarshalWithOptions(pod, yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("lvscare static pod: %w", err)
	}
	return out, nil
}

// UnitOptions describes the systemd unit that runs the daemon.
type UnitOptions struct {
	// Binary is the sealflow executable; DefaultBinary when empty.
	Binary string
	Care   Options
}

// SystemdUnit renders the lvscare.service unit text.
func SystemdUnit(o UnitOptions) (string, error) {
	if err := o.Care.withDefaults().Validate(); err != nil {
		return "", fmt.Errorf("lvscare unit: %w", err)
	}
	if o.Care.RunOnce {
		return "", fmt.Errorf("lvscare unit: --run-once makes no sense in a service that is restarted")
	}
	bin := o.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	if !path.IsAbs(bin) {
		return "", fmt.Errorf("lvscare unit: binary %q: want an absolute path", bin)
	}
	args := append([]string{bin, "lvscare"}, o.Care.Args()...)
	for i, a := range args {
		args[i] = systemdQuote(a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\n")
	fmt.Fprintf(&b, "Description=lvscare: virtual server %s kept true\n", o.Care.VS)
	fmt.Fprintf(&b, "After=network-online.target\nWants=network-online.target\n\n")
	fmt.Fprintf(&b, "[Service]\n")
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(args, " "))
	fmt.Fprintf(&b, "# SIGTERM leaves the rules in place; `sealflow lvscare clean` removes them.\n")
	fmt.Fprintf(&b, "KillSignal=SIGTERM\nRestart=always\nRestartSec=2\n\n")
	fmt.Fprintf(&b, "[Install]\nWantedBy=multi-user.target\n")
	return b.String(), nil
}

var plainArg = regexp.MustCompile(`^[A-Za-z0-9_./:=,@+-]+$`)

// systemdQuote quotes one ExecStart argument: specifiers (%) and variable
// expansion ($) are escaped.
func systemdQuote(s string) string {
	if plainArg.MatchString(s) {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// withDefaults fills zero values with the defaults, so a caller may set
// only VS and RS.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Health.Scheme == "" {
		o.Health.Scheme = d.Health.Scheme
	}
	if o.Health.Path == "" {
		o.Health.Path = d.Health.Path
	}
	if o.Health.Status == (StatusRange{}) {
		o.Health.Status = d.Health.Status
	}
	if o.Health.Timeout == 0 {
		o.Health.Timeout = d.Health.Timeout
	}
	if o.Interval == 0 {
		o.Interval = d.Interval
	}
	if o.Rise == 0 {
		o.Rise = d.Rise
	}
	if o.Fall == 0 {
		o.Fall = d.Fall
	}
	if o.Resync == 0 {
		o.Resync = d.Resync
	}
	if o.Mode == "" {
		o.Mode = d.Mode
	}
	if o.LockDir == "" {
		o.LockDir = d.LockDir
	}
	return o
}
