package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	// registryDir holds one state file per lab and the lock under which
	// subnets are handed out.
	registryDir = "/run/sealflow-lab"
	// defaultDirBase is where a lab's files go unless Config.Dir says.
	defaultDirBase = "/var/tmp/sealflow-lab"

	maxLabName  = 32
	maxHostName = 63
	maxUserName = 32

	controlOffset = 2  // the control namespace gets .2 (the gateway is .1)
	firstMaster   = 11 // masters get .11, .12, ...
	firstNode     = 21 // nodes get .21, ... (later when there are many masters)
	lastHost      = 254
)

// overlayDirs are the machine's directories each host sees through its own
// overlay (relative to /).
func overlayDirs() []string {
	return []string{"etc", "usr", "var/lib", "var/log", "var/cache", "var/spool", "root", "home", "opt"}
}

// privateDirs are the directories a host does not share with the machine;
// a lab's Dir may not be inside one of them.
func privateDirs() []string {
	return append(overlayDirs(), "tmp", "run")
}

// tag is a short stable id of a lab name, used in kernel object names
// (interface names are at most 15 bytes).
func tag(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:3])
}

func bridgeName(name string) string { return "sfl-" + tag(name) }

func vethName(name string, index int) string { return "sfl" + tag(name) + strconv.Itoa(index) }

// controlVethName is the bridge's end of the control namespace's link.
func controlVethName(name string) string { return "sfl" + tag(name) + "c" }

// isVeth reports whether link is a veth of the lab called name (a host's or
// the control namespace's).
func isVeth(name, link string) bool {
	rest, ok := strings.CutPrefix(link, "sfl"+tag(name))
	if !ok || rest == "" {
		return false
	}
	if rest == "c" {
		return true
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

func netnsPrefix(name string) string { return "sfl-" + tag(name) + "-" }

func netnsName(name, host string) string { return netnsPrefix(name) + host }

// controlHost is the name the control namespace takes among the hosts'
// netns names; no host may have it.
const controlHost = "control"

func controlNetnsName(name string) string { return netnsName(name, controlHost) }

func defaultDir(name string) string { return filepath.Join(defaultDirBase, name) }

func hostDir(dir, host string) string { return filepath.Join(dir, "hosts", host) }

func statePath(name string) string { return filepath.Join(registryDir, name+".json") }

// checkName checks a lab or host name: lower-case letters, digits and '-',
// starting with a letter or digit.
func checkName(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s name is empty", what)
	}
	if len(s) > max {
		return fmt.Errorf("%s name %q is longer than %d characters", what, s, max)
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' && i > 0:
		default:
			return fmt.Errorf("%s name %q: use only a-z, 0-9 and '-' (not first)", what, s)
		}
	}
	return nil
}

// checkUser checks a user name for useradd.
func checkUser(s string) error {
	if s == "root" {
		return fmt.Errorf("user %q: root always exists; pick a non-root user name", s)
	}
	if len(s) > maxUserName {
		return fmt.Errorf("user name %q is longer than %d characters", s, maxUserName)
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9' || r == '-') && i > 0:
		default:
			return fmt.Errorf("user name %q: use a-z, 0-9, '_' and '-', starting with a letter", s)
		}
	}
	return nil
}

// checkDir checks that dir can hold a lab: absolute, clean of characters
// that break mount options, and not inside a directory the hosts overlay or
// hide (an overlay's upper dir may not live in its lower dir).
func checkDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("lab dir %q: give an absolute path", dir)
	}
	if strings.ContainsAny(dir, ",:\\ \t\n'\"") {
		return fmt.Errorf("lab dir %q: no commas, colons, quotes or spaces (they break overlay mount options)", dir)
	}
	clean := filepath.Clean(dir)
	if clean == "/" {
		return fmt.Errorf("lab dir %q: give a directory of its own, e.g. %s/NAME", dir, defaultDirBase)
	}
	for _, p := range privateDirs() {
		p = "/" + p
		if clean == p || strings.HasPrefix(clean, p+"/") {
			return fmt.Errorf("lab dir %q is inside %s, which every lab host overlays or hides; use e.g. %s/NAME or /srv/NAME", dir, p, defaultDirBase)
		}
	}
	return nil
}

// offsetAddr returns the address off after the network address of p.
func offsetAddr(p netip.Prefix, off int) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(off)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// parseSubnet parses an IPv4 CIDR the lab can use.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet %q: %w (want e.g. 10.250.7.0/24)", s, err)
	}
	if !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("subnet %q: want an IPv4 network with a prefix from /8 to /24, e.g. 10.250.7.0/24", s)
	}
	return p.Masked(), nil
}

// nodeStart is the first address offset of the group "nodes" (and of any
// group other than "masters").
func nodeStart(masters int) int {
	if firstMaster+masters <= firstNode {
		return firstNode
	}
	return (firstMaster+masters+9)/10*10 + 1
}
