package podspec

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStatusRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want StatusRange
		bad  bool
	}{
		{in: "200-399", want: StatusRange{200, 399}},
		{in: "200", want: StatusRange{200, 200}},
		{in: " 204 - 299 ", want: StatusRange{204, 299}},
		{in: "399-200", bad: true},
		{in: "abc", bad: true},
		{in: "0-700", bad: true},
		{in: "", bad: true},
	} {
		got, err := ParseStatusRange(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: error %v, want bad=%v", tc.in, err, tc.bad)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseAddrPort(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
	}{
		{"10.103.97.2:6443", ""},
		{"10.103.97.2", "--vs"},
		{"[::1]:6443", "IPv4"},
		{"10.103.97.2:0", "non-zero port"},
		{"master1:6443", "IPv4:PORT"},
	} {
		_, err := ParseAddrPort("--vs", tc.in)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	t.Parallel()
	base := DefaultOptions()
	base.VS = netip.MustParseAddrPort("10.103.97.2:6443")
	base.RS = []netip.AddrPort{netip.MustParseAddrPort("192.168.0.11:6443")}
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults with a VS and an RS: %v", err)
	}
	for _, tc := range []struct {
		mod  func(o *Options)
		flag string
	}{
		{func(o *Options) { o.RS = nil }, "--rs"},
		{func(o *Options) { o.RS = append(o.RS, o.RS[0]) }, "given twice"},
		{func(o *Options) { o.RS = []netip.AddrPort{o.VS} }, "virtual server itself"},
		{func(o *Options) { o.Health.Scheme = "udp" }, "--health-schem"},
		{func(o *Options) { o.Health.Path = "healthz" }, "--health-path"},
		{func(o *Options) { o.Health.Timeout = 0 }, "--health-timeout"},
		{func(o *Options) { o.Interval = -time.Second }, "--interval"},
		{func(o *Options) { o.Rise = 0 }, "--rise"},
		{func(o *Options) { o.Fall = 0 }, "--fall"},
		{func(o *Options) { o.Mode = "iptables" }, "--mode"},
		{func(o *Options) { o.VS = netip.AddrPort{} }, "--vs"},
	} {
		o := base
		o.RS = append([]netip.AddrPort(nil), base.RS...)
		tc.mod(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("error %v, want one naming %s", err, tc.flag)
		}
	}
	tcp := base
	tcp.Health.Scheme, tcp.Health.Path = "tcp", ""
	if err := tcp.Validate(); err != nil {
		t.Errorf("tcp probes need no path: %v", err)
	}
}

func TestArgsDefaultsLeftOut(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.VS = netip.MustParseAddrPort("10.103.97.2:6443")
	o.RS = []netip.AddrPort{netip.MustParseAddrPort("192.168.0.11:6443")}
	o.RunOnce = true
	want := []string{"care", "--vs", "10.103.97.2:6443", "--rs", "192.168.0.11:6443", "--run-once"}
	if diff := cmp.Diff(want, o.Args()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
