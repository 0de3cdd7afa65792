package main

import (
	"fmt"
	"sort"
	"strings"
)

// flagKind says how a flag takes its value.
type flagKind int

const (
	stringFlag flagKind = iota
	boolFlag
)

// knownFlags are the real kubelet's flags that kubeadm's 10-kubeadm.conf,
// kubeadm-flags.env and common KUBELET_EXTRA_ARGS pass. The stand-in acts
// on a few of them (see options) and accepts the others as the real one
// does; a flag the real kubelet does not have is an error.
func knownFlags() map[string]flagKind {
	return map[string]flagKind{
		"address":                      stringFlag,
		"bootstrap-kubeconfig":         stringFlag,
		"cert-dir":                     stringFlag,
		"cgroup-driver":                stringFlag,
		"cloud-provider":               stringFlag,
		"cluster-dns":                  stringFlag,
		"cluster-domain":               stringFlag,
		"config":                       stringFlag,
		"config-dir":                   stringFlag,
		"container-runtime-endpoint":   stringFlag,
		"eviction-hard":                stringFlag,
		"fail-swap-on":                 boolFlag,
		"feature-gates":                stringFlag,
		"healthz-bind-address":         stringFlag,
		"healthz-port":                 stringFlag,
		"help":                         boolFlag,
		"hostname-override":            stringFlag,
		"image-service-endpoint":       stringFlag,
		"kube-reserved":                stringFlag,
		"kubeconfig":                   stringFlag,
		"kubelet-cgroups":              stringFlag,
		"log-file":                     stringFlag,
		"logging-format":               stringFlag,
		"max-pods":                     stringFlag,
		"node-ip":                      stringFlag,
		"node-labels":                  stringFlag,
		"node-status-update-frequency": stringFlag,
		"pod-infra-container-image":    stringFlag,
		"pod-manifest-path":            stringFlag,
		"port":                         stringFlag,
		"provider-id":                  stringFlag,
		"register-node":                boolFlag,
		"register-with-taints":         stringFlag,
		"resolv-conf":                  stringFlag,
		"root-dir":                     stringFlag,
		"rotate-certificates":          boolFlag,
		"runtime-cgroups":              stringFlag,
		"runtime-request-timeout":      stringFlag,
		"system-reserved":              stringFlag,
		"tls-cert-file":                stringFlag,
		"tls-private-key-file":         stringFlag,
		"v":                            stringFlag,
		"version":                      stringFlag, // "true", "raw" or bare
		"vmodule":                      stringFlag,
		"volume-plugin-dir":            stringFlag,
		"allowed-unsafe-sysctls":       stringFlag,
		"serialize-image-pulls":        boolFlag,
		"protect-kernel-defaults":      boolFlag,
		"enforce-node-allocatable":     stringFlag,
		"image-gc-high-threshold":      stringFlag,
		"image-gc-low-threshold":       stringFlag,
		"container-log-max-size":       stringFlag,
		"container-log-max-files":      stringFlag,
		"anonymous-auth":               boolFlag,
		"authorization-mode":           stringFlag,
		"client-ca-file":               stringFlag,
		"read-only-port":               stringFlag,
		"cgroups-per-qos":              boolFlag,
		"node-status-max-images":       stringFlag,
	}
}

// flags are the parsed command line: the last value of each flag given.
type flags map[string]string

// parseFlags parses args as the real kubelet's pflag set does: --name=value,
// --name value, and bare --name for booleans. Positional arguments and
// unknown flags are errors.
func parseFlags(args []string) (flags, error) {
	f := flags{}
	known := knownFlags()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-h" {
			f["help"] = "true"
			continue
		}
		if !strings.HasPrefix(a, "--") || a == "--" {
			return nil, fmt.Errorf("unexpected argument %q: the kubelet takes only flags", a)
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		kind, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("unknown flag: --%s", name)
		}
		switch {
		case hasValue:
		case kind == boolFlag:
			value = "true"
		case name == "version":
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, fmt.Errorf("flag needs an argument: --%s", name)
		}
		if kind == boolFlag && value != "true" && value != "false" {
			return nil, fmt.Errorf("invalid argument %q for --%s: want true or false", value, name)
		}
		f[name] = value
	}
	return f, nil
}

// usage lists the accepted flags.
func usage() string {
	known := knownFlags()
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, "--"+n)
	}
	sort.Strings(names)
	return "Usage: kubelet [flags]\n\nA stand-in for the kubelet where no container runtime exists: it runs static pods as host\n" +
		"processes and keeps the kubelet's contract with the API server.\n\nFlags:\n  " + strings.Join(names, "\n  ") + "\n"
}
