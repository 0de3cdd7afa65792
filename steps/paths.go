package steps

// Paths on a host and on the control machine: where the Kubernetes kinds
// read and write, and the checks every path parameter goes through.

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// sysPaths are the places on a host the Kubernetes kinds read and write.
// Tests point them into a temporary directory.
type sysPaths struct {
	Hosts   string // /etc/hosts
	Kube    string // /etc/kubernetes
	State   string // sealflow's markers and private files
	Bin     string // where the lvscare step puts the sealflow binary
	Unit    string // the lvscare systemd unit
	Etcd    string
	Kubelet string
}

func defaultPaths() sysPaths {
	return sysPaths{
		Hosts:   "/etc/hosts",
		Kube:    "/etc/kubernetes",
		State:   "/var/lib/sealflow",
		Bin:     "/usr/local/bin/sealflow",
		Unit:    "/etc/systemd/system/lvscare.service",
		Etcd:    "/var/lib/etcd",
		Kubelet: "/var/lib/kubelet",
	}
}

// checkRemotePath accepts a clean absolute path that is not the root and
// holds no line break or NUL byte.
func checkRemotePath(param, p string) error {
	if p == "" {
		return fmt.Errorf("%s: empty; give an absolute path on the host", param)
	}
	if strings.ContainsAny(p, "\n\r\x00") {
		return fmt.Errorf("%s: %q holds a line break or NUL byte", param, p)
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("%s: %q is not an absolute path on the host", param, p)
	}
	if path.Clean(p) == "/" {
		return fmt.Errorf("%s: %q is the root directory", param, p)
	}
	return nil
}

// openRegular opens a local regular file.
func openRegular(param, name string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", param, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", param, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %s is not a regular file", param, name)
	}
	return f, st, nil
}
