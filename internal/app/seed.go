package app

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sealflow/sealflow/steps"
)

// SeedOptions are the options of the seed-style commands (`sealflow init`,
// `join`, `clean`), which run the shipped plans on hosts given by address.
type SeedOptions struct {
	ExecOptions
	Masters, Nodes []string // addresses, ranges (a.b.c.d-a.b.c.e) or comma lists
	User           string
	Port           int
	KeyFile        string // --pk
	Pkg, PkgURL    string
	Version        string
	VIP            string
	KubeadmConfig  string
	// KubeadmJoinConfig is the user's JoinConfiguration for every join (the
	// plans' kubeadm_join_config); join reuses the one init was given.
	KubeadmJoinConfig string
	PodCIDR           string
	SvcCIDR           string
	Set               []string // more plan vars: key=value
	All               bool     // clean: every host of the cluster
}

// cluster is what the seed commands remember of a cluster, in
// STATE/cluster.json (no secrets: passwords are given again).
type cluster struct {
	Masters []string          `json:"masters"`
	Nodes   []string          `json:"nodes"`
	User    string            `json:"user"`
	Port    int               `json:"port"`
	KeyFile string            `json:"key,omitempty"`
	Vars    map[string]string `json:"vars"`
}

const clusterFile = "cluster.json"

// Init builds a cluster: the shipped ha plan on the given masters and
// nodes, with its state in STATE/ha.
func Init(ctx context.Context, o SeedOptions, io IO) error {
	masters, err := expandAddresses("--master", o.Masters)
	if err != nil {
		return err
	}
	nodes, err := expandAddresses("--node", o.Nodes)
	if err != nil {
		return err
	}
	if len(masters) == 0 {
		return Invalidf("init needs at least one --master")
	}
	if o.Pkg == "" && o.PkgURL == "" {
		return Invalidf("init needs the offline package: --pkg FILE or --pkg-url URL")
	}
	if err := overlap(masters, nodes); err != nil {
		return err
	}
	if err := checkSeedInputs("init", o); err != nil {
		return err
	}
	c := cluster{Masters: masters, Nodes: nodes, User: orStr(o.User, "root"), Port: orInt(o.Port, 22), KeyFile: o.KeyFile, Vars: seedVars(o, nil)}
	// The VIP is recorded even when it is the default: a later join or
	// clean of this cluster uses it, whatever the default becomes.
	if c.Vars["vip"] == "" {
		c.Vars["vip"] = steps.DefaultVIP
	}
	return runSeed(ctx, o, io, "ha", c, nil, func(root string) error { return saveCluster(root, c) })
}

// Join adds masters and nodes to the cluster that Init built (the shipped
// add-node plan; state in STATE/add-node).
func Join(ctx context.Context, o SeedOptions, io IO) error {
	root := stateRoot(o.StateDir)
	c, err := loadCluster(root)
	if err != nil {
		return err
	}
	masters, err := expandAddresses("--master", o.Masters)
	if err != nil {
		return err
	}
	nodes, err := expandAddresses("--node", o.Nodes)
	if err != nil {
		return err
	}
	if len(masters)+len(nodes) == 0 {
		return Invalidf("join needs --master or --node addresses to add")
	}
	for _, a := range append(append([]string{}, masters...), nodes...) {
		if contains(c.Masters, a) || contains(c.Nodes, a) {
			return Invalidf("%s is already in the cluster (see %s)", a, filepath.Join(root, clusterFile))
		}
	}
	if err := overlap(masters, nodes); err != nil {
		return err
	}
	if err := checkSeedInputs("join", o); err != nil {
		return err
	}
	next := c
	next.Masters = append(append([]string{}, c.Masters...), masters...)
	next.Nodes = append(append([]string{}, c.Nodes...), nodes...)
	next.Vars = seedVars(o, c.Vars)
	if o.User != "" {
		next.User = o.User
	}
	if o.KeyFile != "" {
		next.KeyFile = o.KeyFile
	}
	return runSeed(ctx, o, io, "add-node", next, append(append([]string{}, masters...), nodes...),
		func(root string) error { return saveCluster(root, next) })
}

// Clean undoes the install on the given hosts, or on every host of the
// cluster with All (the shipped clean plan; state in STATE/clean).
func Clean(ctx context.Context, o SeedOptions, io IO) error {
	root := stateRoot(o.StateDir)
	c, err := loadCluster(root)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && !o.All) {
		return err
	}
	masters, err := expandAddresses("--master", o.Masters)
	if err != nil {
		return err
	}
	nodes, err := expandAddresses("--node", o.Nodes)
	if err != nil {
		return err
	}
	if o.All {
		masters, nodes = c.Masters, c.Nodes
	}
	if len(masters)+len(nodes) == 0 {
		return Invalidf("clean needs --master or --node addresses, or --all")
	}
	target := cluster{Masters: masters, Nodes: nodes, User: orStr(o.User, orStr(c.User, "root")), Port: orInt(o.Port, orInt(c.Port, 22)),
		KeyFile: orStr(o.KeyFile, c.KeyFile), Vars: map[string]string{}}
	if v := orStr(o.VIP, c.Vars["vip"]); v != "" {
		target.Vars["vip"] = v
	}
	return runSeed(ctx, o, io, "clean", target, nil, func(root string) error {
		if c.Masters == nil && c.Nodes == nil {
			return nil
		}
		c.Masters, c.Nodes = without(c.Masters, masters), without(c.Nodes, nodes)
		if len(c.Masters)+len(c.Nodes) == 0 {
			return os.Remove(filepath.Join(root, clusterFile))
		}
		return saveCluster(root, c)
	})
}

// checkSeedInputs checks every input that is not a host before any host
// is touched: local files exist and are readable, addresses and ranges
// parse, flags combine. All problems come back at once (exit 2).
func checkSeedInputs(cmd string, o SeedOptions) error {
	var probs []string
	readable := func(flag, file string) {
		if file == "" {
			return
		}
		f, err := os.Open(file)
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s %s: %v", flag, file, errors.Unwrap(err)))
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err == nil && !st.Mode().IsRegular() {
			probs = append(probs, fmt.Sprintf("%s %s: not a regular file", flag, file))
			return
		}
		if _, err := f.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
			probs = append(probs, fmt.Sprintf("%s %s: cannot read it: %v", flag, file, err))
		}
	}
	readable("--pkg", o.Pkg)
	readable("--kubeadm-config", o.KubeadmConfig)
	readable("--kubeadm-join-config", o.KubeadmJoinConfig)
	readable("--pk", o.KeyFile)
	if o.Pkg != "" && o.PkgURL != "" {
		probs = append(probs, "--pkg and --pkg-url: give only one")
	}
	if o.VIP != "" && net.ParseIP(o.VIP).To4() == nil {
		probs = append(probs, fmt.Sprintf("--vip %q: want an IPv4 address such as 10.255.255.253", o.VIP))
	}
	for flag, v := range map[string]string{"--podcidr": o.PodCIDR, "--svccidr": o.SvcCIDR} {
		if _, _, err := net.ParseCIDR(v); v != "" && err != nil {
			probs = append(probs, fmt.Sprintf("%s %q: want a CIDR such as 10.244.0.0/16", flag, v))
		}
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Strings(probs)
	return Invalidf("%s: nothing was done on any host:\n  %s", cmd, strings.Join(probs, "\n  "))
}

// runSeed writes the inventory of c (with group new when given) and runs
// the shipped plan in STATE/PLAN; after success, done updates the record.
func runSeed(ctx context.Context, o SeedOptions, io IO, plan string, c cluster, newHosts []string, done func(root string) error) error {
	root := stateRoot(o.StateDir)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	inv := filepath.Join(root, plan+"-inventory.yaml")
	if err := os.WriteFile(inv, inventoryYAML(c, newHosts), 0o600); err != nil {
		return err
	}
	set := append([]string{}, o.Set...)
	for k, v := range c.Vars {
		set = append(set, k+"="+v)
	}
	eo := o.ExecOptions
	eo.StateDir = filepath.Join(root, plan)
	err := Run(ctx, RunOptions{ExecOptions: eo, PlanFile: plan, InventoryFile: inv, Set: set}, io)
	if err != nil {
		fmt.Fprintf(io.Stderr, "the run's state is in %s: `sealflow status --state %s`, `sealflow resume --state %s`\n", eo.StateDir, eo.StateDir, eo.StateDir)
		return err
	}
	return done(root)
}

func seedVars(o SeedOptions, base map[string]string) map[string]string {
	v := map[string]string{}
	for k, x := range base {
		v[k] = x
	}
	for k, x := range map[string]string{
		"pkg": abs(o.Pkg), "pkg_url": o.PkgURL, "version": o.Version, "vip": o.VIP,
		"kubeadm_config": abs(o.KubeadmConfig), "kubeadm_join_config": abs(o.KubeadmJoinConfig), "pod_cidr": o.PodCIDR, "svc_cidr": o.SvcCIDR,
	} {
		if x != "" {
			v[k] = x
		}
	}
	if o.Pkg != "" {
		delete(v, "pkg_url")
	} else if o.PkgURL != "" {
		v["pkg"] = ""
	}
	return v
}

func inventoryYAML(c cluster, newHosts []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults: {user: %s, port: %d", yamlQuote(c.User), c.Port)
	if c.KeyFile != "" {
		fmt.Fprintf(&b, ", key: %s", yamlQuote(abs(c.KeyFile)))
	}
	b.WriteString("}\ngroups:\n")
	group := func(name string, addrs []string) {
		fmt.Fprintf(&b, "  %s:\n", name)
		if len(addrs) == 0 {
			b.WriteString("    []\n")
		}
		for _, a := range addrs {
			fmt.Fprintf(&b, "    - {address: %s}\n", yamlQuote(a))
		}
	}
	group("masters", c.Masters)
	group("nodes", c.Nodes)
	if newHosts != nil {
		group("new", newHosts)
	}
	return []byte(b.String())
}

func yamlQuote(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a YAML string
	return string(b)
}

func stateRoot(dir string) string {
	if dir == "" {
		return DefaultStateDir
	}
	return dir
}

func saveCluster(root string, c cluster) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(root, clusterFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(root, clusterFile))
}

func loadCluster(root string) (cluster, error) {
	var c cluster
	b, err := os.ReadFile(filepath.Join(root, clusterFile))
	if errors.Is(err, os.ErrNotExist) {
		return c, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("no cluster recorded in %s: build one with `sealflow init` first (or give --state)", root)}
	}
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// expandAddresses reads addresses, comma lists and IPv4 ranges
// (192.168.0.2-192.168.0.4, or 192.168.0.2-4).
func expandAddresses(flag string, in []string) ([]string, error) {
	var out []string
	for _, arg := range in {
		for _, item := range strings.Split(arg, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			lo, hi, isRange := strings.Cut(item, "-")
			if !isRange {
				if net.ParseIP(item) == nil {
					return nil, Invalidf("%s %q: not an IP address", flag, item)
				}
				out = append(out, item)
				continue
			}
			first := net.ParseIP(lo).To4()
			if first == nil {
				return nil, Invalidf("%s %q: a range is IPv4 FIRST-LAST, e.g. 192.168.0.2-192.168.0.4", flag, item)
			}
			if !strings.Contains(hi, ".") {
				i := strings.LastIndex(lo, ".")
				hi = lo[:i+1] + hi
			}
			last := net.ParseIP(hi).To4()
			if last == nil {
				return nil, Invalidf("%s %q: a range is IPv4 FIRST-LAST, e.g. 192.168.0.2-192.168.0.4", flag, item)
			}
			a, z := binary.BigEndian.Uint32(first), binary.BigEndian.Uint32(last)
			if z < a || z-a >= 4096 {
				return nil, Invalidf("%s %q: the range is empty or larger than 4096 addresses", flag, item)
			}
			for x := a; x <= z; x++ {
				ip := make(net.IP, 4)
				binary.BigEndian.PutUint32(ip, x)
				out = append(out, ip.String())
			}
		}
	}
	seen := map[string]bool{}
	for _, a := range out {
		if seen[a] {
			return nil, Invalidf("%s: %s is given twice", flag, a)
		}
		seen[a] = true
	}
	return out, nil
}

func overlap(masters, nodes []string) error {
	for _, m := range masters {
		if contains(nodes, m) {
			return Invalidf("%s is given as both --master and --node", m)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func without(list, drop []string) []string {
	var out []string
	for _, x := range list {
		if !contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
