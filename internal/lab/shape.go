package lab

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Links are shaped with a token bucket (tc's tbf) on both ends of a veth, so
// that each direction of the link has the rate.
const (
	// tbfLatency is how long a packet may wait in the bucket's queue: enough
	// for TCP to keep the link busy (a round trip in the lab is well under a
	// millisecond), short enough that an ssh session beside a bulk
	// transfer still answers within a tenth of a second.
	tbfLatency = "50ms"
	// tbfTick is the timer rate the bucket's size is reckoned with (the
	// kernel's HZ is 250 on most distributions' kernels): the bucket holds
	// one tick of data, so a timer that fires a tick late still lets the
	// link reach its rate.
	tbfTick = 250
	// tbfMinBurst is the smallest bucket, in bytes. A veth carries TCP's
	// GSO super-packets (64 KiB of payload, and tbf counts every segment's
	// headers); tbf splits a packet bigger than the bucket into MTU-sized
	// ones, which costs CPU that a lab shares with its hosts.
	tbfMinBurst = 128 << 10

	minRate = 8_000           // bits/s: 1 kB/s, below which an ssh login takes minutes
	maxRate = 100_000_000_000 // bits/s: beyond what a veth carries
)

var rateRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)([a-z]+)$`)

// rateUnits are tc's rate units that parseRate takes, in bits per second
// (tc's k, m, g are powers of 1000; "bps" is bytes per second).
func rateUnits() map[string]float64 {
	return map[string]float64{
		"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
		"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9,
	}
}

// parseRate parses a tc rate such as "100mbit" or "12.5mbps" and returns it
// in bits per second.
func parseRate(s string) (uint64, error) {
	m := rateRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("rate %q: want a number and a unit, e.g. 100mbit, 1gbit, 500kbit or 10mbps (bytes)", s)
	}
	unit, ok := rateUnits()[m[2]]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q; use bit, kbit, mbit, gbit or bps, kbps, mbps, gbps (bytes)", s, m[2])
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", s, err)
	}
	bits := n * unit
	if bits < minRate || bits > maxRate {
		return 0, fmt.Errorf("rate %q: want from 8kbit to 100gbit", s)
	}
	return uint64(bits), nil
}

// tbfBurst is the bucket size in bytes for a rate in bits per second.
func tbfBurst(rate uint64) uint64 {
	return max(rate/8/tbfTick, tbfMinBurst)
}

// tbfArgs are tc's arguments that put the lab's bucket on dev, in the
// network namespace netns ("" for the machine's).
func tbfArgs(netns, dev string, rate uint64) []string {
	var args []string
	if netns != "" {
		args = append(args, "-n", netns)
	}
	return append(args, "qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatUint(rate, 10)+"bit",
		"burst", strconv.FormatUint(tbfBurst(rate), 10),
		"latency", tbfLatency)
}

// shapeLink puts rate (a tc rate, as Config.Rate) on both ends of a veth:
// br on the bridge, in the machine's network namespace, and peer in
// netns. An empty rate leaves the link as it is.
func shapeLink(ctx context.Context, rateSpec, br, netns, peer string) error {
	if rateSpec == "" {
		return nil
	}
	rate, err := parseRate(rateSpec)
	if err != nil {
		return err
	}
	for _, args := range [][]string{tbfArgs("", br, rate), tbfArgs(netns, peer, rate)} {
		if err := run(ctx, "tc", args...); err != nil {
			return fmt.Errorf("shape link: %w (the kernel needs sch_tbf: modprobe sch_tbf)", err)
		}
	}
	return nil
}
