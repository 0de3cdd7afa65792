package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// kubeletConfig is the part of KubeletConfiguration
// (kubelet.config.k8s.io/v1beta1) the stand-in acts on.
type kubeletConfig struct {
	APIVersion                string `json:"apiVersion"`
	Kind                      string `json:"kind"`
	StaticPodPath             string `json:"staticPodPath"`
	HealthzBindAddress        string `json:"healthzBindAddress"`
	HealthzPort               *int   `json:"healthzPort"`
	RotateCertificates        bool   `json:"rotateCertificates"`
	FileCheckFrequency        string `json:"fileCheckFrequency"`
	NodeStatusUpdateFrequency string `json:"nodeStatusUpdateFrequency"`
	NodeLeaseDurationSeconds  int    `json:"nodeLeaseDurationSeconds"`
	Port                      int    `json:"port"`
}

// options is what the kubelet runs with: its config file with the flags
// that override it applied, and defaults as the real kubelet's.
type options struct {
	NodeName            string
	NodeIP              string
	Kubeconfig          string
	BootstrapKubeconfig string
	CertDir             string
	RootDir             string
	StaticPodPath       string
	HealthzAddr         string // host:port
	RotateCertificates  bool
	FileCheck           time.Duration
	StatusUpdate        time.Duration
	LeaseDuration       int
	Port                int
	Taints              []taint
	Labels              map[string]string
	Version             string
}

// taint is a node taint from --register-with-taints (key=value:Effect).
type taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// yamlToJSON decodes YAML (or JSON) into v through JSON, so struct tags
// are the API's JSON names.
func yamlToJSON(b []byte, v any) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return err
	}
	return json.Unmarshal(j, v)
}

// loadOptions builds the options from the flags, reading the --config file.
func loadOptions(f flags, version string) (options, error) {
	o := options{
		Kubeconfig:          f["kubeconfig"],
		BootstrapKubeconfig: f["bootstrap-kubeconfig"],
		RootDir:             "/var/lib/kubelet",
		HealthzAddr:         "127.0.0.1:10248",
		FileCheck:           20 * time.Second,
		StatusUpdate:        10 * time.Second,
		LeaseDuration:       40,
		Port:                10250,
		Labels:              map[string]string{},
		Version:             version,
	}
	if v := f["root-dir"]; v != "" {
		o.RootDir = v
	}
	if path := f["config"]; path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return o, fmt.Errorf("load kubelet config file: %w", err)
		}
		var c kubeletConfig
		if err := yamlToJSON(b, &c); err != nil {
			return o, fmt.Errorf("load kubelet config file %s: %w", path, err)
		}
		if c.Kind != "KubeletConfiguration" || c.APIVersion != "kubelet.config.k8s.io/v1beta1" {
			return o, fmt.Errorf("kubelet config file %s: want kind KubeletConfiguration of kubelet.config.k8s.io/v1beta1, got kind %q of %q", path, c.Kind, c.APIVersion)
		}
		o.StaticPodPath = c.StaticPodPath
		host, port := "127.0.0.1", 10248
		if c.HealthzBindAddress != "" {
			host = c.HealthzBindAddress
		}
		if c.HealthzPort != nil {
			port = *c.HealthzPort
		}
		o.HealthzAddr = net.JoinHostPort(host, strconv.Itoa(port))
		o.RotateCertificates = c.RotateCertificates
		// Zero durations (kubeadm writes "0s") mean the default, as in
		// the real kubelet's defaulting.
		for _, d := range []struct {
			name, value string
			to          *time.Duration
		}{{"fileCheckFrequency", c.FileCheckFrequency, &o.FileCheck}, {"nodeStatusUpdateFrequency", c.NodeStatusUpdateFrequency, &o.StatusUpdate}} {
			if d.value == "" {
				continue
			}
			v, err := time.ParseDuration(d.value)
			if err != nil {
				return o, fmt.Errorf("kubelet config file %s: %s: %w", path, d.name, err)
			}
			if v > 0 {
				*d.to = v
			}
		}
		if c.NodeLeaseDurationSeconds > 0 {
			o.LeaseDuration = c.NodeLeaseDurationSeconds
		}
		if c.Port > 0 {
			o.Port = c.Port
		}
	}
	if v := f["pod-manifest-path"]; v != "" {
		o.StaticPodPath = v
	}
	if v := f["rotate-certificates"]; v != "" {
		o.RotateCertificates = v == "true"
	}
	if f["healthz-port"] != "" || f["healthz-bind-address"] != "" {
		host, port, _ := net.SplitHostPort(o.HealthzAddr)
		if v := f["healthz-bind-address"]; v != "" {
			host = v
		}
		if v := f["healthz-port"]; v != "" {
			port = v
		}
		o.HealthzAddr = net.JoinHostPort(host, port)
	}
	o.CertDir = filepath.Join(o.RootDir, "pki")
	if v := f["cert-dir"]; v != "" {
		o.CertDir = v
	}
	name := f["hostname-override"]
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return o, fmt.Errorf("get the host name (or pass --hostname-override): %w", err)
		}
		name = h
	}
	o.NodeName = strings.ToLower(strings.TrimSpace(name))
	if v := f["node-ip"]; v != "" {
		if net.ParseIP(v) == nil {
			return o, fmt.Errorf("--node-ip %q is not an IP address", v)
		}
		o.NodeIP = v
	} else {
		ip, err := hostIP(o.NodeName)
		if err != nil {
			return o, err
		}
		o.NodeIP = ip
	}
	if v := f["register-with-taints"]; v != "" {
		ts, err := parseTaints(v)
		if err != nil {
			return o, fmt.Errorf("--register-with-taints: %w", err)
		}
		o.Taints = ts
	}
	if v := f["node-labels"]; v != "" {
		for _, kv := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(kv, "=")
			if k == "" {
				return o, fmt.Errorf("--node-labels: empty label key in %q", v)
			}
			o.Labels[k] = val
		}
	}
	return o, nil
}

// parseTaints parses key=value:Effect,key:Effect.
func parseTaints(s string) ([]taint, error) {
	var out []taint
	for _, spec := range strings.Split(s, ",") {
		kv, effect, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("taint %q: want key[=value]:Effect", spec)
		}
		switch effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			return nil, fmt.Errorf("taint %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", spec, effect)
		}
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, taint{Key: k, Value: v, Effect: effect})
	}
	return out, nil
}

// hostIP finds the node's address as the real kubelet does without
// --node-ip: the host name's address (from /etc/hosts), else the first
// global unicast address of an interface that is up.
func hostIP(name string) (string, error) {
	if addrs, err := net.LookupIP(name); err == nil {
		for _, a := range addrs {
			if a.To4() != nil && a.IsGlobalUnicast() {
				return a.String(), nil
			}
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("find the node's address (or pass --node-ip): %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "", fmt.Errorf("find the node's address: %s does not resolve and no interface has one; pass --node-ip", name)
}
