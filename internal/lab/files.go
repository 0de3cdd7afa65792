package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// writeKey writes a new ed25519 key pair to path and path.pub and returns
// the public key.
func writeKey(path, comment string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key %s: %w", path, err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encode key %s: %w", path, err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key %s: %w", path, err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment + "\n"
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return nil, fmt.Errorf("write public key: %w", err)
	}
	return sp, nil
}

// readPublicKey reads an authorized_keys style public key file.
func readPublicKey(path string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse public key %s: %w", path, err)
	}
	return pk, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeInventory writes the sealflow inventory of the lab's hosts.
func (l *Lab) writeInventory() error {
	var b strings.Builder
	b.WriteString("# sealflow lab " + l.Name + ": `sealflow run -i " + l.Inventory + " --known-hosts " + l.KnownHosts + " PLAN`\n")
	fmt.Fprintf(&b, "defaults: {user: root, port: 22, key: %s}\n", strconv.Quote(l.Key))
	b.WriteString("groups:\n")
	groups := []string{"masters", "nodes"} // always present, maybe empty
	byGroup := map[string][]Host{}
	for _, h := range l.Hosts {
		if h.PID == 0 {
			continue // not started (yet)
		}
		if _, ok := byGroup[h.Group]; !ok && h.Group != "masters" && h.Group != "nodes" {
			groups = append(groups, h.Group)
		}
		byGroup[h.Group] = append(byGroup[h.Group], h)
	}
	for _, g := range groups {
		fmt.Fprintf(&b, "  %s:", g)
		if len(byGroup[g]) == 0 {
			b.WriteString(" []\n")
			continue
		}
		b.WriteString("\n")
		for _, h := range byGroup[g] {
			if l.st.NodeStack {
				// The host's cgroup namespace is rooted at its own subtree:
				// its kubelet takes cgroupRoot "/", as on a real machine.
				fmt.Fprintf(&b, "    - {name: %s, address: %s, labels: {%s: /}}\n", h.Name, h.Address, CgroupRootLabel)
				continue
			}
			fmt.Fprintf(&b, "    - {name: %s, address: %s}\n", h.Name, h.Address)
		}
	}
	if l.st.KubeNode {
		b.WriteString("# What this machine needs of plans/ha.yaml (lab only: see KubeNodeVars).\nvars:\n")
		for _, v := range KubeNodeVars() {
			fmt.Fprintf(&b, "  %s: %s\n", v.Name, strconv.Quote(v.Value))
		}
	}
	return writeFileAtomic(l.Inventory, []byte(b.String()), 0o644)
}

// writeKnownHosts writes the hosts' public keys by address.
func (l *Lab) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range l.Hosts {
		if h.PID == 0 {
			continue // not started (yet)
		}
		pk, err := readPublicKey(filepath.Join(hostDir(l.Dir, h.Name), "ssh_host_ed25519_key.pub"))
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		b.WriteString(knownhosts.Line([]string{h.Address}, pk) + "\n")
	}
	return writeFileAtomic(l.KnownHosts, []byte(b.String()), 0o644)
}
