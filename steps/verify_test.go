package steps

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyParams(t *testing.T) {
	t.Parallel()
	s, err := verifyKind().New(Params{})
	if err != nil {
		t.Fatal(err)
	}
	env := s.(*verify).env()
	if env["SF_IMAGE"] != DefaultToolbox || env["SF_NS"] != "sealflow-verify" || env["SF_TIMEOUT"] != "300" || env["SF_VIP"] != DefaultVIP {
		t.Errorf("defaults: %v", env)
	}
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{"vip": "nope"}, "vip"},
		{Params{"namespace": "kube-system"}, "namespace of its own"},
		{Params{"namespace": "Bad_NS"}, "namespace"},
		{Params{"image": "a b"}, "image"},
		{Params{"timeout": "forever"}, "timeout"},
		{Params{"timeout": "3h"}, "timeout"},
		{Params{"kubeconfig": "relative.conf"}, "kubeconfig"},
		{Params{"daemonsets": []string{"kube-proxy"}}, "NAMESPACE/NAME"},
		{Params{"daemonsets": []string{"kube-system/a;b"}}, "NAMESPACE/NAME"},
	} {
		if _, err := verifyKind().New(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one about %s", c.p, err, c.want)
		}
	}
}

// TestVerifyScriptParses checks the script with the shells a host may have
// as sh; the checks themselves run against a real cluster in the HA tests.
func TestVerifyScriptParses(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "verify.sh")
	if err := os.WriteFile(f, []byte(verifyScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"sh", "dash", "bash"} {
		p, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		if out, err := exec.Command(p, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	if got := failures("CHECK NODE RESULT\nnode-ready  w1  FAIL: NotReady\ndns  m1  ok\n"); got != "1 check failed: node-ready w1: NotReady" {
		t.Errorf("failures = %q", got)
	}
	table := "CHECK NODE RESULT\n"
	for i := range 7 {
		table += fmt.Sprintf("daemonset      n%d     FAIL: no ready pod of kube-flannel/kube-flannel-ds\n", i)
	}
	if got, want := failures(table), "7 checks failed: daemonset n0: no ready pod of kube-flannel/kube-flannel-ds; "; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "; and 2 more (see the log)") {
		t.Errorf("failures = %q", got)
	}
	if got := failures("CHECK NODE RESULT\ndns  m1  ok\n"); got != "" {
		t.Errorf("failures of a table without one = %q", got)
	}
}

// TestVerifyListingDecides runs the verify script under sh -e (as the
// wrapper does) with a kubectl stand-in whose listing of kube-system
// fails, then shows a Pending pod, then all Running: the verdict is the
// last listing polled, and a kubectl that fails is never "all ok".
func TestVerifyListingDecides(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, listings string // one listing a call; the last repeats
		timeout        string
		want, not      string
	}{
		{"fails, pending, running", "fail|etcd-m1 m1 Running true\nkube-lvscare-n1 n1 Pending \n|etcd-m1 m1 Running true\nkube-lvscare-n1 n1 Running true\n",
			"20s", "system-pods    all                      ok", "FAIL: kube-lvscare"},
		{"always fails", "fail", "3s",
			"system-pod     all                      FAIL: cannot list the kube-system pods: kubectl: Unable to connect to the server: EOF", "system-pods    all                      ok"},
		{"stays pending", "etcd-m1 m1 Running true\nkube-lvscare-n1 n1 Pending \n", "3s",
			"system-pod     n1:Pending               FAIL: kube-lvscare-n1 is not Running and ready", "system-pods    all                      ok"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, _, _ := verifyWithFake(t, c.timeout, c.listings)
			if !strings.Contains(out, c.want) || strings.Contains(out, c.not) {
				t.Errorf("want a row %q and none %q:\n%s", c.want, c.not, out)
			}
			if !strings.Contains(out, "node-ready     n1                       ok") {
				t.Errorf("no node-ready row for n1:\n%s", out)
			}
		})
	}
}

// TestVerifyCheckNamespace: the namespace of an earlier verify still being
// deleted is waited for (the API takes nothing new into it), and check
// objects the API refuses are a failed check named in the table, not a
// script that ends without saying why.
func TestVerifyCheckNamespace(t *testing.T) {
	t.Parallel()
	running := "etcd-m1 m1 Running true\n"
	t.Run("an earlier one going away", func(t *testing.T) {
		t.Parallel()
		out, dir, err := verifyWithFake(t, "20s", running, "TERMINATING=2")
		// The stand-in lists no pods: once applied, that is the failure.
		if want := "check-pods     all                      FAIL: no check pod (pod) is listed in namespace sealflow-verify"; !strings.Contains(out, want) || strings.Contains(out, "still being deleted") || err == nil {
			t.Errorf("want a row %q only, and a failure:\n%s", want, out)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "applied")); !strings.Contains(string(b), "kind: DaemonSet") {
			t.Errorf("the check objects were not applied once the namespace was gone: %q", b)
		}
	})
	t.Run("an earlier one stays", func(t *testing.T) {
		t.Parallel()
		out, dir, err := verifyWithFake(t, "3s", running, "TERMINATING=1000")
		if want := "check-pods     all                      FAIL: namespace sealflow-verify, an earlier verify's, is still being deleted"; !strings.Contains(out, want) || err == nil {
			t.Errorf("want a row %q and a failure:\n%s", want, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "applied")); err == nil {
			t.Error("applied into a namespace being deleted")
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		out, _, err := verifyWithFake(t, "20s", running, "APPLY_FAILS=1")
		if want := "check-pods     all                      FAIL: cannot create the check pods: kubectl: Error from server (Forbidden)"; !strings.Contains(out, want) || err == nil {
			t.Errorf("want a row %q and a failure:\n%s", want, out)
		}
		if strings.Contains(out, "pod-pods") || strings.Contains(out, "dns ") {
			t.Errorf("checks of pods that were never created:\n%s", out)
		}
		if !strings.Contains(out, "system-pods    all                      ok") {
			t.Errorf("the earlier checks' rows are gone:\n%s", out)
		}
	})
}

// verifyWithFake runs the verify script under sh -e with a kubectl stand-in
// for two Ready nodes and a DaemonSet ready on both; listings are the
// kube-system listings, one a call (the last repeats; "fail" is an error).
// env may set TERMINATING=N (the check namespace is being deleted for N
// lookups) and APPLY_FAILS=1. It returns the table, the stand-in's
// directory (its file applied holds what was applied) and the exit.
func verifyWithFake(t *testing.T, timeout, listings string, env ...string) (string, string, error) {
	t.Helper()
	dir := t.TempDir()
	for i, l := range strings.Split(listings, "|") {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("list%d", i+1)), []byte(l), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fake := `#!/bin/sh
shift # --request-timeout
count() { c=$(( $(cat "$FAKE/$1" 2>/dev/null || echo 0) + 1 )); echo $c >"$FAKE/$1"; }
case "$*" in
"get nodes -o jsonpath="*) printf 'm1 True\nn1 True\n' ;;
"get pods -n kube-system "*)
	count calls
	while [ ! -e "$FAKE/list$c" ]; do c=$((c - 1)); done
	if [ "$(cat "$FAKE/list$c")" = fail ]; then echo "Unable to connect to the server: EOF" >&2; exit 1; fi
	cat "$FAKE/list$c" ;;
"get ds "*) echo 2 ;;
"get namespace "*) count ns; [ "$c" -gt "${TERMINATING:-0}" ] || echo 2026-12-02T19:40:00Z ;;
"apply -f -")
	if [ -n "$APPLY_FAILS" ]; then cat >/dev/null; echo 'Error from server (Forbidden): unable to create new content in namespace sealflow-verify because it is being terminated' >&2; exit 1; fi
	cat >"$FAKE/applied" ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := verifyKind().New(Params{"timeout": timeout})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-e", "-c", verifyScript)
	cmd.Env = append(append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "FAKE="+dir), env...)
	for k, v := range s.(*verify).env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	return string(out), dir, err
}
