package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/lab"
)

// sf runs the sealflow binary in dir and returns its output and exit code.
func sf(t *testing.T, bin, dir string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("sealflow %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func mustSF(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	out, errOut, code := sf(t, bin, dir, "", args...)
	if code != 0 {
		t.Fatalf("sealflow %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func labExec(t *testing.T, l *lab.Lab, host string, argv ...string) string {
	t.Helper()
	out, err := l.Exec(context.Background(), host, argv...)
	if err != nil {
		t.Fatalf("lab exec %s %v: %v", host, argv, err)
	}
	return out
}

// journalIntervals returns, per task of step, when its last attempt
// started and ended.
func journalRecords(t *testing.T, state string) []journal.Record {
	t.Helper()
	rd, err := journal.ReadOnly(state)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rd.Replay()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestSSHPlanOnLab runs a plan over SSH on a 5-host lab: selectors,
// needs, outputs across hosts, serial, retries, and copy with a checksum
// skip and a resumed upload.
func TestSSHPlanOnLab(t *testing.T) {
	t.Parallel()
	l := lab.ForTest(t, lab.Config{Name: "plan", Masters: 3, Nodes: 2})
	bin := sealflowBin(t)
	dir := t.TempDir()
	payload := bytes.Repeat([]byte("sealflow payload 0123456789\n"), 40000) // ~1.1 MB
	write(t, filepath.Join(dir, "payload"), string(payload))
	sum := sha256.Sum256(payload)
	// A partial upload left by an interrupted run on n1: the copy resumes it.
	labExec(t, l, "n1", "sh", "-c", fmt.Sprintf("mkdir -p /opt/app && head -c 300000 > /opt/app/.payload.sealflow-partial"))
	cmd, err := l.Command(context.Background(), "n1", "sh", "-c", "cat > /opt/app/.payload.sealflow-partial")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = bytes.NewReader(payload[:300000])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("write partial: %v %s", err, out)
	}
	write(t, filepath.Join(dir, "plan.yaml"), `
name: lab-plan
steps:
  - id: token
    kind: shell
    on: masters[0]
    with:
      secret_outputs: [token]
      run: echo "token=tok-$(hostname)-42" >> "$SEALFLOW_OUTPUT"
  - id: second-master
    kind: shell
    on: host.index == 1 && "masters" in host.groups
    with: {run: 'hostname > /root/second'}
  - id: join
    kind: shell
    on: nodes
    needs: [token]
    with:
      run: |
        echo "${{ steps.token.outputs.token }}" > /root/token
        echo "from=$(hostname)" >> "$SEALFLOW_OUTPUT"
  - id: one-at-a-time
    kind: shell
    on: all
    serial: 1
    with: {run: 'sleep 0.2'}
  - id: flaky
    kind: shell
    on: masters
    retries: 2
    with:
      run: |
        echo x >> /root/flaky
        [ "$(wc -l < /root/flaky)" -ge 2 ]
  - id: ship
    kind: copy
    on: nodes
    with: {src: `+filepath.Join(dir, "payload")+`, dest: /opt/app/payload, mode: "0600"}
  - id: gather
    kind: shell
    on: masters[0]
    needs: [join]
    with: {run: 'echo "${{ steps.join.hosts["n1"].outputs.from }} ${{ steps.join.hosts["n2"].outputs.from }}" > /root/gathered'}
`)
	args := []string{"run", "--output", "plain", "-i", l.Inventory, "--known-hosts", l.KnownHosts, "plan.yaml"}
	out := mustSF(t, bin, dir, args...)
	if !strings.Contains(out, "15 done") {
		t.Errorf("summary: %s", out)
	}
	for host, want := range map[string]string{"n1": "tok-m1-42\n", "n2": "tok-m1-42\n"} {
		if got := labExec(t, l, host, "cat", "/root/token"); got != want {
			t.Errorf("%s got token %q, want %q", host, got, want)
		}
	}
	if got := labExec(t, l, "m2", "cat", "/root/second"); got != "m2\n" {
		t.Errorf("the expression selector ran on %q, want m2", got)
	}
	if got := labExec(t, l, "m1", "cat", "/root/gathered"); got != "n1 n2\n" {
		t.Errorf("gathered %q", got)
	}
	for _, h := range []string{"m1", "m2", "m3"} {
		if got := labExec(t, l, h, "sh", "-c", "wc -l < /root/flaky"); strings.TrimSpace(got) != "2" {
			t.Errorf("%s ran flaky %s times, want 2 (one retry)", h, strings.TrimSpace(got))
		}
	}
	for _, h := range []string{"n1", "n2"} {
		got := labExec(t, l, h, "sh", "-c", "sha256sum /opt/app/payload | cut -d' ' -f1; stat -c %a /opt/app/payload; ls -A /opt/app")
		if want := hex.EncodeToString(sum[:]) + "\n600\npayload\n"; got != want {
			t.Errorf("%s: copy left %q, want %q", h, got, want)
		}
	}
	// serial: 1: no two tasks of the step overlapped (journal times).
	type span struct{ start, end time.Time }
	spans := map[string]*span{}
	for _, r := range journalRecords(t, filepath.Join(dir, ".sealflow")) {
		if r.Step != "one-at-a-time" {
			continue
		}
		if spans[r.Host] == nil {
			spans[r.Host] = &span{}
		}
		switch r.Event {
		case journal.Started:
			spans[r.Host].start = r.Time
		case journal.Done:
			spans[r.Host].end = r.Time
		}
	}
	for a, sa := range spans {
		for b, sb := range spans {
			if a < b && sa.start.Before(sb.end) && sb.start.Before(sa.end) {
				t.Errorf("serial: 1 tasks on %s and %s overlapped", a, b)
			}
		}
	}
	// The token is a secret: not in the journal or any log in clear.
	filepath.Walk(filepath.Join(dir, ".sealflow"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("tok-m1-42")) {
				t.Errorf("%s holds the secret token", p)
			}
		}
		return nil
	})
	// A fresh state: the copy finds the checksum on the hosts and sends nothing.
	out = mustSF(t, bin, dir, append([]string{"run", "--state", "fresh"}, args[1:]...)...)
	for _, h := range []string{"n1", "n2"} {
		if !strings.Contains(out, "unchanged ship@"+h+" (already done (checked))") {
			t.Errorf("copy on %s was not found done by its checksum:\n%s", h, out)
		}
	}
}

// TestSSHHostKeys: strict refuses unknown hosts, accept-new records them,
// and a changed key is refused even with accept-new.
func TestSSHHostKeys(t *testing.T) {
	t.Parallel()
	l := lab.ForTest(t, lab.Config{Name: "keys", Masters: 1, Nodes: 1})
	bin := sealflowBin(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), "name: k\nsteps:\n  - {id: a, kind: shell, with: {run: 'true'}}\n")
	kh := filepath.Join(dir, "known_hosts")
	write(t, kh, "")
	run := func(check string) (string, int) {
		out, errOut, code := sf(t, bin, dir, "", "run", "--fresh", "--output", "plain", "-i", l.Inventory, "--known-hosts", kh, "--host-key-check", check, "plan.yaml")
		return out + errOut, code
	}
	out, code := run("strict")
	if code != 1 || !strings.Contains(out, "is not in "+kh) || !strings.Contains(out, "SHA256:") || !strings.Contains(out, "accept-new") {
		t.Fatalf("strict with an empty known_hosts: exit %d\n%s", code, out)
	}
	out, code = run("accept-new")
	if code != 0 {
		t.Fatalf("accept-new: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(kh); strings.Count(string(b), "ssh-ed25519") != 2 {
		t.Fatalf("accept-new recorded:\n%s", b)
	}
	if out, code = run("strict"); code != 0 {
		t.Fatalf("strict after accept-new: exit %d\n%s", code, out)
	}
	// n1 gets a new host key (as after a reinstall).
	key := filepath.Join(l.Dir, "hosts", "n1", "ssh_host_ed25519_key")
	os.Remove(key)
	os.Remove(key + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	if err := l.StopSSHD(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if err := l.StartSSHD(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	out, code = run("accept-new")
	if code != 1 || !strings.Contains(out, "n1") || !strings.Contains(out, "does not match") || !strings.Contains(out, "ssh-keygen -f "+kh+" -R") {
		t.Fatalf("changed key with accept-new: exit %d\n%s", code, out)
	}
	if out, code = run("off"); code != 0 || !strings.Contains(out, "warning") {
		t.Fatalf("off: exit %d, want 0 and a warning\n%s", code, out)
	}
}

// TestSSHPasswordAndBecome: password authentication, and become through
// sudo as a non-root user whose sudo asks for the password.
func TestSSHPasswordAndBecome(t *testing.T) {
	t.Parallel()
	l := lab.ForTest(t, lab.Config{Name: "auth", Masters: 1, Nodes: 1, User: "deploy", Password: true})
	bin := sealflowBin(t)
	dir := t.TempDir()
	var hosts strings.Builder
	for _, h := range l.Hosts {
		fmt.Fprintf(&hosts, "    - {name: %s, address: %s}\n", h.Name, h.Address)
	}
	write(t, filepath.Join(dir, "pw.yaml"), `
name: pw
hosts:
  defaults: {user: root, password_env: LAB_PW}
  groups:
    all-hosts:
`+hosts.String()+`
steps:
  - {id: who, kind: shell, with: {run: 'echo "uid=$(id -u)" >> $SEALFLOW_OUTPUT; id -un > /root/who'}}
`)
	write(t, filepath.Join(dir, "become.yaml"), `
name: become
hosts:
  defaults: {user: `+l.User+`, key: `+l.Key+`, become: true}
  groups:
    all-hosts:
`+hosts.String()+`
steps:
  - {id: as-root, kind: shell, with: {run: 'id -u > /root/became; echo "uid=$(id -u)" >> $SEALFLOW_OUTPUT'}}
  - {id: as-user, kind: shell, become: false, with: {run: 'id -un > /tmp/plain-user'}}
`)
	// Password auth: no key offered (HOME without keys), password from env.
	home := t.TempDir()
	cmd := exec.Command(bin, "run", "--output", "plain", "--known-hosts", l.KnownHosts, "pw.yaml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "SSH_AUTH_SOCK=", "LAB_PW="+l.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("password auth: %v\n%s", err, out)
	}
	if got := labExec(t, l, "n1", "cat", "/root/who"); got != "root\n" {
		t.Errorf("who = %q", got)
	}
	// A wrong password fails with the methods tried.
	cmd = exec.Command(bin, "run", "--fresh", "--output", "plain", "--known-hosts", l.KnownHosts, "pw.yaml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "SSH_AUTH_SOCK=", "LAB_PW=wrong")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "password") || !strings.Contains(string(out), "who@m1") {
		t.Errorf("wrong password: %v\n%s", err, out)
	}
	// become: the sudo password given on stdin.
	stdout, stderr, code := sf(t, bin, dir, l.Password+"\n", "run", "--state", "b", "--output", "plain", "--known-hosts", l.KnownHosts, "--password-stdin", "become.yaml")
	if code != 0 {
		t.Fatalf("become: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, h := range []string{"m1", "n1"} {
		if got := labExec(t, l, h, "cat", "/root/became"); got != "0\n" {
			t.Errorf("%s: became uid %q", h, got)
		}
		if got := labExec(t, l, h, "cat", "/tmp/plain-user"); got != l.User+"\n" {
			t.Errorf("%s: become: false ran as %q", h, got)
		}
	}
	if strings.Contains(stdout+stderr, l.Password) {
		t.Error("the password appears in sealflow's output")
	}

	// distribute by relay as a user who becomes root: the agent is
	// installed and run through sudo and writes where only root may.
	blob := strings.Repeat("relayed as root ", 200000)
	write(t, filepath.Join(dir, "blob"), blob)
	write(t, filepath.Join(dir, "relay.yaml"), `
name: relay
hosts:
  defaults: {user: `+l.User+`, key: `+l.Key+`, become: true}
  groups:
    all-hosts:
`+hosts.String()+`
steps:
  - {id: put, kind: distribute, with: {src: blob, dest: /root/relayed/blob, mode: relay}}
`)
	stdout, stderr, code = sf(t, bin, dir, l.Password+"\n", "run", "--state", "relay", "--output", "plain", "--known-hosts", l.KnownHosts, "--password-stdin", "relay.yaml")
	if code != 0 {
		t.Fatalf("relay with become: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, h := range []string{"m1", "n1"} {
		if got := labExec(t, l, h, "stat", "-c", "%U %s", "/root/relayed/blob"); got != fmt.Sprintf("root %d\n", len(blob)) {
			t.Errorf("%s: relayed file: %q", h, got)
		}
		log, _ := os.ReadFile(filepath.Join(dir, "relay", "logs", "put", h+".log"))
		if !strings.Contains(string(log), "by relay") || strings.Contains(string(log), "push instead") {
			t.Errorf("%s: not by relay:\n%s", h, log)
		}
		if ps, _ := l.Exec(context.Background(), h, "pgrep", "-f", "sealflow-relay-"); ps != "" {
			t.Errorf("%s: relay agent left running: %s", h, ps)
		}
	}

	// sudo with Defaults requiretty: m1 without a terminal fails with
	// sudo's words and the fix; n1 with tty: true runs, its output exact
	// for the task that reads it.
	rule := "/etc/sudoers.d/zz-requiretty"
	for _, h := range []string{"m1", "n1"} {
		labExec(t, l, h, "sh", "-c", "echo 'Defaults requiretty' >"+rule+" && chmod 0440 "+rule)
		t.Cleanup(func() { l.Exec(context.Background(), h, "rm", "-f", rule) })
	}
	write(t, filepath.Join(dir, "tty.yaml"), `
name: tty
hosts:
  defaults: {user: `+l.User+`, key: `+l.Key+`, become: true}
  groups:
    all-hosts:
      - {name: m1, address: `+l.Hosts[0].Address+`}
      - {name: n1, address: `+l.Hosts[1].Address+`, tty: true}
steps:
  - {id: uid, kind: shell, with: {run: 'echo to-stderr >&2; echo "uid=$(id -u)" >> $SEALFLOW_OUTPUT'}}
  - {id: use, kind: shell, needs: [uid], with: {run: 'printf "%s|" "${{ steps.uid.outputs.uid }}" > /root/tty-uid'}}
`)
	stdout, stderr, code = sf(t, bin, dir, l.Password+"\n", "run", "--state", "tty", "--keep-going", "--output", "plain", "--known-hosts", l.KnownHosts, "--password-stdin", "tty.yaml")
	if code != 1 {
		t.Errorf("requiretty on m1: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "FAILED    uid@m1") || !strings.Contains(stdout, "requiretty") || !strings.Contains(stdout, "tty: true") {
		t.Errorf("requiretty on m1: want uid@m1 failed naming requiretty and tty: true\n%s", stdout)
	}
	if !strings.Contains(stdout, "done      use@n1") {
		t.Errorf("tty: true on n1: use@n1 not done\n%s\n%s", stdout, stderr)
	}
	if got := labExec(t, l, "n1", "cat", "/root/tty-uid"); got != "0|" {
		t.Errorf("tty: true: the output read back is %q, want \"0|\" (root, no \\r)", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "tty", "logs", "uid", "n1.log")); err != nil || !strings.Contains(string(b), "to-stderr\n") || strings.Contains(string(b), l.Password) {
		t.Errorf("tty: true: the log (%v) lacks stderr or shows the password:\n%s", err, b)
	}
	if strings.Contains(stdout+stderr, l.Password) {
		t.Error("the password appears in sealflow's output")
	}
}

// TestSSHHostDown: sshd stops on one host mid-run. The error names the
// host; with --keep-going the other hosts finish their independent work;
// resume completes once sshd is back.
func TestSSHHostDown(t *testing.T) {
	t.Parallel()
	l := lab.ForTest(t, lab.Config{Name: "down", Masters: 1, Nodes: 2})
	bin := sealflowBin(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), `
name: down
steps:
  - {id: first, kind: shell, with: {run: 'touch /root/first'}}
  - id: wait
    kind: shell
    needs: [first]
    with: {run: 'i=0; while [ ! -e /root/go ] && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.05; done; touch /root/waited'}
  - {id: last, kind: shell, needs: [wait], with: {run: 'touch /root/last'}}
`)
	// n2's sshd dies (listener and sessions) while `wait` runs on it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 600; i++ {
			if _, err := l.Exec(context.Background(), "n2", "test", "-e", "/root/first"); err == nil {
				l.StopSSHD(context.Background(), "n2")
				l.Exec(context.Background(), "n2", "sh", "-c", "pkill -x sshd; true")
				for _, h := range []string{"m1", "n1"} {
					l.Exec(context.Background(), h, "touch", "/root/go")
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	args := []string{"--output", "plain", "--known-hosts", l.KnownHosts}
	stdout, stderr, code := sf(t, bin, dir, "", append([]string{"run", "--keep-going", "-i", l.Inventory}, append(args, "plan.yaml")...)...)
	<-done
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "@n2") || !strings.Contains(stdout, "FAILED") {
		t.Errorf("the failure does not name n2:\n%s", stdout)
	}
	for _, h := range []string{"m1", "n1"} {
		labExec(t, l, h, "test", "-e", "/root/last")
	}
	if err := l.StartSSHD(context.Background(), "n2"); err != nil {
		t.Fatal(err)
	}
	labExec(t, l, "n2", "touch", "/root/go")
	out, errOut, code := sf(t, bin, dir, "", append([]string{"resume", "--rerun", "wait@n2"}, args...)...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errOut)
	}
	labExec(t, l, "n2", "test", "-e", "/root/last")
	if !strings.Contains(out, "unchanged last@m1") {
		t.Errorf("resume re-ran finished work:\n%s", out)
	}
}

// TestSSHSIGKILLAndResume is the SIGKILL-and-resume test over SSH: four
// lab hosts, sealflow killed at random points, resumed until done.
func TestSSHSIGKILLAndResume(t *testing.T) {
	t.Parallel()
	l := lab.ForTest(t, lab.Config{Name: "kill", Masters: 0, Nodes: 4})
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.yaml")
	b, err := os.ReadFile(l.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	// The plan's cross-host step selects group g: name the nodes so.
	write(t, inv, strings.Replace(string(b), "  nodes:", "  g:", 1))
	plan := filepath.Join(dir, "plan.yaml")
	write(t, plan, killPlan("/root/ran", false))
	killAndResume(t, dir, plan, []string{"-i", inv, "--known-hosts", l.KnownHosts}, []string{"--known-hosts", l.KnownHosts})
}

// TestSSHKeysAgentBastion: an encrypted key with its passphrase from an
// environment variable, keys from ssh-agent, and a host reached through a
// bastion (one hop, like ProxyJump).
func TestSSHKeysAgentBastion(t *testing.T) {
	t.Parallel()
	l := lab.ForTest(t, lab.Config{Name: "agent", Masters: 1, Nodes: 1})
	bin := sealflowBin(t)
	dir := t.TempDir()
	home := t.TempDir() // no default keys, no known_hosts
	enc := filepath.Join(dir, "enc_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", enc).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(enc + ".pub")
	for _, h := range l.Hosts {
		cmd, err := l.Command(context.Background(), h.Name, "sh", "-c", "cat >> /etc/ssh/sealflow-lab/authorized_keys")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = bytes.NewReader(pub)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("authorize key on %s: %v %s", h.Name, err, out)
		}
	}
	m1, _ := l.Host("m1")
	n1, _ := l.Host("n1")
	plan := func(defaults, n1Extra string) string {
		return "name: keys\nhosts:\n  defaults: {" + defaults + "}\n  groups:\n    g:\n" +
			"      - {name: m1, address: " + m1.Address + "}\n" +
			"      - {name: n1, address: " + n1.Address + n1Extra + "}\n" +
			"steps:\n  - {id: who, kind: shell, with: {run: 'hostname > /root/reached'}}\n"
	}
	run := func(name, text string, env ...string) {
		t.Helper()
		write(t, filepath.Join(dir, name), text)
		cmd := exec.Command(bin, "run", "--state", name+".state", "--output", "plain", "--known-hosts", l.KnownHosts, name)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "HOME="+home, "SSH_AUTH_SOCK="), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		for _, h := range []string{"m1", "n1"} {
			if got := labExec(t, l, h, "sh", "-c", "cat /root/reached && rm /root/reached"); got != h+"\n" {
				t.Errorf("%s: %s reached %q", name, h, got)
			}
		}
	}
	run("passphrase.yaml", plan("key: "+enc+", key_passphrase_env: KEY_PASS", ""), "KEY_PASS=pass phrase")

	// ssh-agent holds the key; no key file is named.
	agentDir := t.TempDir()
	sock := filepath.Join(agentDir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("ssh-agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	add := exec.Command("ssh-add", l.Key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v %s", err, out)
	}
	write(t, filepath.Join(dir, "agent.yaml"), plan("user: root", ""))
	cmd := exec.Command(bin, "run", "--state", "agent.state", "--output", "plain", "--known-hosts", l.KnownHosts, "agent.yaml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "SSH_AUTH_SOCK="+sock)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	for _, h := range []string{"m1", "n1"} {
		labExec(t, l, h, "rm", "/root/reached")
	}

	// n1 through m1: the machine cannot reach n1's sshd directly any more.
	labExec(t, l, "n1", "nft", "add table ip guard; add chain ip guard in { type filter hook input priority 0; } ; add rule ip guard in tcp dport 22 ip saddr != "+m1.Address+" drop")
	run("bastion.yaml", plan("key: "+l.Key, ", bastion: {address: "+m1.Address+", key: "+l.Key+"}"))
}
