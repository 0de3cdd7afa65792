package lab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr string
	}{
		{"a", ""},
		{"lab-1", ""},
		{"", "empty"},
		{"-x", "not first"},
		{"Lab", "use only"},
		{"a_b", "use only"},
		{"a.b", "use only"},
		{strings.Repeat("a", 33), "longer than 32"},
	}
	for _, tt := range tests {
		err := checkName("lab", tt.in, maxLabName)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) {
			t.Errorf("checkName(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr string
	}{
		{"/var/tmp/sealflow-lab/x", ""},
		{"/srv/lab", ""},
		{"relative/dir", "absolute"},
		{"/", "of its own"},
		{"/root/lab", "inside /root"},
		{"/etc", "inside /etc"},
		{"/tmp/x", "inside /tmp"},
		{"/run/x", "inside /run"},
		{"/var/lib/x", "inside /var/lib"},
		{"/var/library", ""}, // not under /var/lib
		{"/srv/a,b", "commas"},
		{"/srv/a:b", "colons"},
	}
	for _, tt := range tests {
		err := checkDir(tt.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) {
			t.Errorf("checkDir(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckUser(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"alice": true, "ops_1": true, "_x": true, "root": false, "1a": false, "Al": false, "a b": false} {
		if err := checkUser(in); (err == nil) != ok {
			t.Errorf("checkUser(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	p := netip.MustParsePrefix("10.250.7.0/24")
	got := []string{offsetAddr(p, 1).String(), offsetAddr(p, firstMaster).String(), offsetAddr(netip.MustParsePrefix("10.9.0.0/16"), 300).String()}
	want := []string{"10.250.7.1", "10.250.7.11", "10.9.1.44"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("offsetAddr (-want +got):\n%s", d)
	}
	starts := map[int]int{0: 21, 3: 21, 10: 21, 11: 31, 25: 41}
	for masters, want := range starts {
		if got := nodeStart(masters); got != want {
			t.Errorf("nodeStart(%d) = %d, want %d", masters, got, want)
		}
	}
	for _, bad := range []string{"10.250.7.0", "10.250.7.0/25", "fd00::/64", "10.0.0.0/7", "x/24"} {
		if _, err := parseSubnet(bad); err == nil {
			t.Errorf("parseSubnet(%q) accepted", bad)
		}
	}
	if got, err := parseSubnet("10.250.7.9/24"); err != nil || got.String() != "10.250.7.0/24" {
		t.Errorf("parseSubnet(10.250.7.9/24) = %v, %v", got, err)
	}
}

func TestLinkNames(t *testing.T) {
	t.Parallel()
	name := "a-rather-long-lab-name-of-32-chr"
	for _, n := range []string{bridgeName(name), vethName(name, 999999)} {
		if len(n) > 15 {
			t.Errorf("link name %q is longer than 15 bytes", n)
		}
	}
	if !isVeth(name, vethName(name, 12)) {
		t.Errorf("isVeth(%q) = false", vethName(name, 12))
	}
	for _, other := range []string{bridgeName(name), vethName("other", 1), "sfl" + tag(name), "sfl" + tag(name) + "x"} {
		if isVeth(name, other) {
			t.Errorf("isVeth(%q) = true", other)
		}
	}
	if bridgeName("a") == bridgeName("b") {
		t.Error("two lab names give the same bridge")
	}
}

func TestSSHDConfig(t *testing.T) {
	t.Parallel()
	h := hostState{Name: "m1", Address: "10.250.7.11"}
	for _, tt := range []struct {
		password      bool
		root, passwdA string
	}{
		{false, "PermitRootLogin prohibit-password", "PasswordAuthentication no"},
		{true, "PermitRootLogin yes", "PasswordAuthentication yes"},
	} {
		l := &Lab{Name: "x", Dir: "/srv/x", st: state{Password: tt.password}}
		conf := l.sshdConfig(h)
		for _, want := range []string{tt.root, tt.passwdA, "ListenAddress 10.250.7.11:22", "UsePAM no", "HostKey /srv/x/hosts/m1/ssh_host_ed25519_key"} {
			if !strings.Contains(conf, want+"\n") {
				t.Errorf("password=%v: sshd_config lacks %q:\n%s", tt.password, want, conf)
			}
		}
	}
}

func TestInitScriptKeepsPasswordOffCommandLines(t *testing.T) {
	t.Parallel()
	l := &Lab{Name: "x", Dir: "/srv/x", Password: "s3cret-value", st: state{User: "alice", Password: true, HasPass: true}}
	script := l.initScript(hostState{Name: "m1", Address: "10.250.7.11"}, netip.MustParsePrefix("10.250.7.0/24"))
	if strings.Contains(script, l.Password) {
		t.Errorf("init script holds the password:\n%s", script)
	}
	if strings.Contains(script, "set -x") || strings.Contains(script, "set -eux") {
		t.Errorf("init script traces commands (it would log the password):\n%s", script)
	}
	for _, want := range []string{"chpasswd", "useradd -m -s /bin/bash -U 'alice'", "'root'"} {
		if !strings.Contains(script, want) {
			t.Errorf("init script lacks %q", want)
		}
	}
}
