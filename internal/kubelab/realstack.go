package kubelab

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealflow/sealflow/internal/lab"
)

// The real node stack: the package `sealflow package build` makes (real
// kubelet, containerd, runc, CNI plugins, images, flannel), on lab hosts
// with systemd as PID 1 (lab.Config.Systemd and its NodeStack).

// RealPackageCopy is ForTest's package, copied into the test's
// temporary directory: package.sh run from another checkout may replace
// the cached one while the test runs.
func RealPackageCopy(t testing.TB) string {
	t.Helper()
	path := ForTest(t)
	own := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := copyFile(path, own); err != nil {
		t.Fatalf("copy the package: %v", err)
	}
	return own
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RealStackLab starts a lab of masters and nodes whose hosts are fresh
// machines for the real node stack (lab.Config.KubeNode: systemd as PID 1,
// the machine's own runtime hidden, the plan vars this machine needs in
// the inventory).
func RealStackLab(t testing.TB, name string, masters, nodes int) *lab.Lab {
	t.Helper()
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skipf("no systemd here (%v): apt-get install systemd", err)
	}
	return lab.ForTest(t, lab.Config{Name: name, Masters: masters, Nodes: nodes, KubeNode: true})
}
