// Package kubelab gives tests the lab's offline Kubernetes package,
// cached outside the repository (/var/cache/sealflow): what `sealflow
// package build` makes (testdata/kube/package.sh) from loopback mirrors of
// upstream artifacts the lab builds from the Go module proxy, and lab hosts
// that run it (realstack.go).
package kubelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script builds the package, relative to the repository.
const script = "testdata/kube/package.sh"

// buildTimeout bounds a build from a cold module cache (about 30 minutes
// on 2 cores when the machine is otherwise idle).
const buildTimeout = 60 * time.Minute

// Package builds the package if needed (cached: seconds when nothing
// changed) and returns the tarball's path. A failure's error ends with the
// build's last lines.
func Package(ctx context.Context) (path string, err error) {
	return build(ctx, nil)
}

// build runs the script; progress goes to log (may be nil).
func build(ctx context.Context, log io.Writer) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, script))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, log)
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the Kubernetes package (bash %s): %w\n%s", script, err, tail(stderr.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return "", fmt.Errorf("build the Kubernetes package: %s printed %q, not a package", script, path)
	}
	return path, nil
}

// ForTest returns the package's path for a test. It skips the test, saying
// why, only when it cannot build here (not root: the cache is in
// /var/cache); a failed build fails the test.
func ForTest(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the Kubernetes package is built into /var/cache/sealflow: run as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	start := time.Now()
	path, err := build(ctx, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Kubernetes package %s (ready in %s)", path, time.Since(start).Round(time.Millisecond))
	return path
}

// logWriter sends build progress to the test log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// repoRoot finds the repository from the working directory (tests run in
// their package's directory, the demo in the repository).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, script)); err == nil {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d, nil
			}
		}
		if d == filepath.Dir(d) {
			return "", errors.New("find the repository: no " + script + " above " + dir + " (run from the sealflow repository)")
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
