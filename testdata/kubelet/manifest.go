package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// podManifest is the part of a v1 Pod the stand-in runs.
type podManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Containers                    []containerManifest `json:"containers"`
		InitContainers                []containerManifest `json:"initContainers"`
		HostNetwork                   bool                `json:"hostNetwork"`
		TerminationGracePeriodSeconds *int64              `json:"terminationGracePeriodSeconds"`
	} `json:"spec"`
}

type containerManifest struct {
	Name           string   `json:"name"`
	Image          string   `json:"image"`
	Command        []string `json:"command"`
	Args           []string `json:"args"`
	WorkingDir     string   `json:"workingDir"`
	Env            []envVar `json:"env"`
	ReadinessProbe *probe   `json:"readinessProbe"`
	StartupProbe   *probe   `json:"startupProbe"`
}

type envVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `json:"fieldPath"`
		} `json:"fieldRef"`
	} `json:"valueFrom"`
}

// probe is an HTTP GET or TCP probe (exec and gRPC probes count as
// passing: there is no container to run them in).
type probe struct {
	HTTPGet *struct {
		Host   string          `json:"host"`
		Path   string          `json:"path"`
		Port   json.RawMessage `json:"port"`
		Scheme string          `json:"scheme"`
	} `json:"httpGet"`
	TCPSocket *struct {
		Host string          `json:"host"`
		Port json.RawMessage `json:"port"`
	} `json:"tcpSocket"`
	TimeoutSeconds int `json:"timeoutSeconds"`
}

// staticPod is one manifest of the static pod directory, made ready to run
// on this node: named and identified as the real kubelet does (name
// suffixed with the node name, UID a hash of the file, its content and the
// node).
type staticPod struct {
	UID       string
	Name      string // with the node name suffix
	Namespace string
	File      string
	Manifest  podManifest
	Raw       map[string]any // the manifest as the API's JSON
	Grace     time.Duration
	// Containers run in order after the init containers ran to completion.
	Init       []container
	Containers []container
}

// container is a process to run for a container of a static pod.
type container struct {
	Name      string
	Image     string
	Argv      []string // command + args, argv[0] resolved on PATH at start
	Env       []string
	Dir       string
	Readiness *probe
}

// podEnv says what a container's environment may refer to.
type podEnv struct {
	NodeName, NodeIP, Path string
	Marker                 string // name of the variable marking the stand-in's processes
}

// loadStaticPods reads every manifest in dir (files starting with "." are
// ignored, as by the real kubelet). A file that cannot be run is reported
// in errs and skipped; the others are returned sorted by name.
func loadStaticPods(dir string, env podEnv) (pods []staticPod, errs []error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read static pod path: %w", err)}
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read static pod %s: %w", path, err))
			continue
		}
		p, err := parseStaticPod(path, b, env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pods = append(pods, p)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].File < pods[j].File })
	return pods, errs
}

// parseStaticPod turns a manifest file into a static pod of this node.
func parseStaticPod(path string, b []byte, env podEnv) (staticPod, error) {
	var p staticPod
	var m podManifest
	if err := yamlToJSON(b, &m); err != nil {
		return p, fmt.Errorf("static pod %s: %w", path, err)
	}
	if m.Kind != "Pod" || m.APIVersion != "v1" {
		return p, fmt.Errorf("static pod %s: want kind Pod of apiVersion v1, got kind %q of %q", path, m.Kind, m.APIVersion)
	}
	if m.Metadata.Name == "" {
		return p, fmt.Errorf("static pod %s: invalid pod: name is needed for the pod", path)
	}
	if len(m.Spec.Containers) == 0 {
		return p, fmt.Errorf("static pod %s: pod %s has no containers", path, m.Metadata.Name)
	}
	var raw map[string]any
	if err := yamlToJSON(b, &raw); err != nil {
		return p, fmt.Errorf("static pod %s: %w", path, err)
	}
	h := sha256.New()
	h.Write(b)
	fmt.Fprintf(h, "host:%s", env.NodeName)
	fmt.Fprintf(h, "file:%s", path)
	p.UID = hex.EncodeToString(h.Sum(nil))[:32]
	p.Name = m.Metadata.Name + "-" + strings.ToLower(env.NodeName)
	p.Namespace = m.Metadata.Namespace
	if p.Namespace == "" {
		p.Namespace = "default"
	}
	p.File = path
	p.Manifest = m
	p.Raw = raw
	p.Grace = 30 * time.Second
	if g := m.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 {
		p.Grace = time.Duration(*g) * time.Second
	}
	for _, list := range []struct {
		in  []containerManifest
		out *[]container
	}{{m.Spec.InitContainers, &p.Init}, {m.Spec.Containers, &p.Containers}} {
		for _, cm := range list.in {
			c, err := containerProcess(p, cm, env)
			if err != nil {
				return p, fmt.Errorf("static pod %s: container %s: %w", path, cm.Name, err)
			}
			*list.out = append(*list.out, c)
		}
	}
	return p, nil
}

// containerProcess turns a container into the process that stands in for
// it: command + args on the host, the container's env on top of a small
// base environment.
func containerProcess(p staticPod, cm containerManifest, env podEnv) (container, error) {
	c := container{Name: cm.Name, Image: cm.Image, Dir: cm.WorkingDir, Readiness: cm.ReadinessProbe}
	if cm.Name == "" {
		return c, errors.New("a container needs a name")
	}
	if len(cm.Command) == 0 {
		return c, fmt.Errorf("no command: there is no image %q to take an entrypoint from; give the container a command", cm.Image)
	}
	c.Argv = append(append([]string{}, cm.Command...), cm.Args...)
	if c.Dir == "" {
		c.Dir = "/"
	}
	c.Env = []string{
		"PATH=" + env.Path,
		"HOSTNAME=" + env.NodeName,
		"HOME=/root",
		env.Marker + "=" + p.Namespace + "/" + p.Name + "/" + cm.Name,
	}
	for _, e := range cm.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return c, fmt.Errorf("env %s: only fieldRef is supported in valueFrom (static pods may not refer to API objects)", e.Name)
			}
			switch fp := e.ValueFrom.FieldRef.FieldPath; fp {
			case "metadata.name":
				v = p.Name
			case "metadata.namespace":
				v = p.Namespace
			case "metadata.uid":
				v = p.UID
			case "spec.nodeName":
				v = env.NodeName
			case "status.podIP", "status.hostIP":
				v = env.NodeIP
			default:
				return c, fmt.Errorf("env %s: fieldRef %q is not supported", e.Name, fp)
			}
		}
		c.Env = append(c.Env, e.Name+"="+expandEnv(v, c.Env))
	}
	return c, nil
}

// expandEnv expands $(NAME) references to earlier variables, as the
// kubelet does for env values; $$ escapes.
func expandEnv(s string, env []string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	lookup := func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == name {
				return v, true
			}
		}
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
