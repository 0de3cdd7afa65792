// Package podspec is what runs lvscare and what the plan format needs to
// know of it: the daemon's options, their defaults, flags and checks, and
// the static pod manifest and systemd unit that start it. It imports no
// kernel library (lvscare does), so steps can render the manifests without
// linking nftables, IPVS or netlink into the plan format.
package podspec

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// Mode selects a backend.
type Mode string

// Modes.
const (
	ModeAuto     Mode = "auto"
	ModeIPVS     Mode = "ipvs"
	ModeNFTables Mode = "nftables"
)

// Defaults.
const (
	DefaultVIP           = "10.255.255.253" // steps.DefaultVIP: outside the default service and pod networks
	DefaultInterval      = time.Second
	DefaultFall          = 2
	DefaultRise          = 1
	DefaultHealthTimeout = time.Second
	DefaultHealthPath    = "/healthz"
	DefaultHealthScheme  = "https"
	DefaultResync        = 5 * time.Second
	// DefaultLockDir holds, for each virtual server, the daemon's lock and
	// the backend pin (the backend its first program chose). It is on
	// tmpfs: the pin goes at reboot with the kernel rules it describes.
	DefaultLockDir = "/run/sealflow"
)

// DefaultHealthStatus is the range of HTTP status codes that count as
// healthy.
var DefaultHealthStatus = StatusRange{Min: 200, Max: 399}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// ParseStatusRange parses "200-399" or "200".
func ParseStatusRange(s string) (StatusRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	r := StatusRange{Min: a, Max: b}
	if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
		return StatusRange{}, fmt.Errorf("health status %q: want a code or a range of HTTP codes such as 200-399", s)
	}
	return r, nil
}

// String renders the range as ParseStatusRange reads it.
func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Contains reports whether code is in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Min && code <= r.Max }

// Health describes the probe of a real server.
type Health struct {
	// Scheme is "https", "http" or "tcp".
	Scheme string
	// Path is the HTTP(S) request path.
	Path string
	// Status is the range of codes that count as healthy.
	Status StatusRange
	// Timeout bounds one probe.
	Timeout time.Duration
	// CAFile, when set, verifies the server's certificate against it;
	// otherwise any certificate is accepted (apiservers are self-signed).
	CAFile string
}

// Options is everything `lvscare care` takes.
type Options struct {
	VS       netip.AddrPort
	RS       []netip.AddrPort
	Health   Health
	Interval time.Duration
	Rise     int
	Fall     int
	// Resync is how often the kernel's state is read back in full.
	Resync  time.Duration
	Mode    Mode
	RunOnce bool
	// LockDir holds the lock and the backend pin of VS (DefaultLockDir).
	LockDir string
}

// DefaultOptions returns the defaults with no virtual or real servers.
func DefaultOptions() Options {
	return Options{
		Health: Health{
			Scheme:  DefaultHealthScheme,
			Path:    DefaultHealthPath,
			Status:  DefaultHealthStatus,
			Timeout: DefaultHealthTimeout,
		},
		Interval: DefaultInterval,
		Rise:     DefaultRise,
		Fall:     DefaultFall,
		Resync:   DefaultResync,
		Mode:     ModeAuto,
		LockDir:  DefaultLockDir,
	}
}

// ParseAddrPort parses "IP:PORT" for flag what (e.g. "--vs").
func ParseAddrPort(what, s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%s %q: want IPv4:PORT such as 10.103.97.2:6443", what, s)
	}
	if err := CheckAddr(what, ap); err != nil {
		return netip.AddrPort{}, err
	}
	return ap, nil
}

// ParseMode parses a --mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeIPVS, ModeNFTables:
		return m, nil
	case "":
		return ModeAuto, nil
	}
	return "", fmt.Errorf("mode %q: want auto, ipvs or nftables", s)
}

// Validate checks o and says which flag to fix.
func (o Options) Validate() error {
	var errs []error
	if err := CheckAddr("--vs", o.VS); err != nil {
		errs = append(errs, err)
	}
	if len(o.RS) == 0 {
		errs = append(errs, errors.New("--rs: give at least one real server (IP:PORT)"))
	}
	seen := map[netip.AddrPort]bool{}
	for _, r := range o.RS {
		if err := CheckAddr("--rs", r); err != nil {
			errs = append(errs, err)
		}
		if seen[r] {
			errs = append(errs, fmt.Errorf("--rs %s given twice", r))
		}
		if r == o.VS {
			errs = append(errs, fmt.Errorf("--rs %s is the virtual server itself", r))
		}
		seen[r] = true
	}
	switch o.Health.Scheme {
	case "http", "https", "tcp":
	default:
		errs = append(errs, fmt.Errorf("--health-schem %q: want https, http or tcp", o.Health.Scheme))
	}
	if o.Health.Scheme != "tcp" && !strings.HasPrefix(o.Health.Path, "/") {
		errs = append(errs, fmt.Errorf("--health-path %q: want a path starting with /", o.Health.Path))
	}
	if o.Health.Status.Min < 100 || o.Health.Status.Max > 599 || o.Health.Status.Min > o.Health.Status.Max {
		errs = append(errs, fmt.Errorf("--health-status %s: want a range of HTTP codes such as 200-399", o.Health.Status))
	}
	if o.Health.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--health-timeout %s: want a positive duration such as 1s", o.Health.Timeout))
	}
	if o.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--interval %s: want a positive duration such as 1s", o.Interval))
	}
	if o.Rise < 1 {
		errs = append(errs, fmt.Errorf("--rise %d: want 1 or more", o.Rise))
	}
	if o.Fall < 1 {
		errs = append(errs, fmt.Errorf("--fall %d: want 1 or more", o.Fall))
	}
	if o.Resync <= 0 {
		errs = append(errs, fmt.Errorf("resync %s: want a positive duration", o.Resync))
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		errs = append(errs, fmt.Errorf("--mode: %w", err))
	}
	if o.LockDir != "" && !path.IsAbs(o.LockDir) {
		errs = append(errs, fmt.Errorf("--lock-dir %q: want an absolute path", o.LockDir))
	}
	return errors.Join(errs...)
}

// Args renders o as the arguments of `sealflow lvscare care`, leaving out
// values equal to the defaults.
func (o Options) Args() []string {
	d := DefaultOptions()
	args := []string{"care", "--vs", o.VS.String()}
	for _, r := range o.RS {
		args = append(args, "--rs", r.String())
	}
	if o.Health.Scheme != "" && o.Health.Scheme != d.Health.Scheme {
		args = append(args, "--health-schem", o.Health.Scheme)
	}
	if o.Health.Path != "" && o.Health.Path != d.Health.Path {
		args = append(args, "--health-path", o.Health.Path)
	}
	if o.Health.Status != (StatusRange{}) && o.Health.Status != d.Health.Status {
		args = append(args, "--health-status", o.Health.Status.String())
	}
	if o.Health.Timeout != 0 && o.Health.Timeout != d.Health.Timeout {
		args = append(args, "--health-timeout", o.Health.Timeout.String())
	}
	if o.Health.CAFile != "" {
		args = append(args, "--health-ca", o.Health.CAFile)
	}
	if o.Interval != 0 && o.Interval != d.Interval {
		args = append(args, "--interval", o.Interval.String())
	}
	if o.Rise != 0 && o.Rise != d.Rise {
		args = append(args, "--rise", strconv.Itoa(o.Rise))
	}
	if o.Fall != 0 && o.Fall != d.Fall {
		args = append(args, "--fall", strconv.Itoa(o.Fall))
	}
	if o.Mode != "" && o.Mode != d.Mode {
		args = append(args, "--mode", string(o.Mode))
	}
	if o.LockDir != "" && o.LockDir != d.LockDir {
		args = append(args, "--lock-dir", o.LockDir)
	}
	if o.RunOnce {
		args = append(args, "--run-once")
	}
	return args
}

// CheckAddr validates an address the kernel backends accept: IPv4 with a
// port. what names it in the error (a flag, "virtual server").
func CheckAddr(what string, ap netip.AddrPort) error {
	if !ap.IsValid() || !ap.Addr().Is4() || ap.Port() == 0 {
		return &AddrError{What: what, Addr: ap}
	}
	return nil
}

// AddrError reports an address a backend cannot program.
type AddrError struct {
	What string
	Addr netip.AddrPort
}

func (e *AddrError) Error() string {
	return e.What + " " + e.Addr.String() + ": want an IPv4 address and a non-zero port (IP:PORT)"
}
