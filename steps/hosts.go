package steps

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// apiserverBlock is the /etc/hosts block of the join and kubeadm-init
// steps: apiserver.cluster.local → a master or the VIP.
const apiserverBlock = "sealflow-apiserver"

// apiserverName is the control-plane endpoint's host name.
const apiserverName = "apiserver.cluster.local"

// hostsKind writes one marked block of /etc/hosts.
func hostsKind() *Kind {
	return &Kind{
		Name: "hosts",
		Doc:  "write (or with state: absent remove) one marked block of /etc/hosts",
		Params: []Param{
			{Name: "entries", Type: StringMap, Doc: "host name → address"},
			{Name: "lines", Type: StringList, Doc: `more entries as "ADDRESS NAME..." lines`},
			{Name: "block", Type: String, Doc: `the block's name (default "sealflow")`},
			{Name: "state", Type: String, Doc: "present (default) or absent"},
			{Name: "file", Type: String, Doc: "the hosts file (default /etc/hosts)"},
		},
		Rerunnable: true,
		New:        newHosts,
	}
}

type hostsStep struct {
	block  hostsBlock
	lines  []string
	absent bool
}

func newHosts(p Params) (Step, error) {
	s := &hostsStep{block: hostsBlock{file: "/etc/hosts", name: "sealflow"}}
	if f, _ := p["file"].(string); f != "" {
		if err := checkRemotePath("file", f); err != nil {
			return nil, err
		}
		s.block.file = f
	}
	if b, _ := p["block"].(string); b != "" {
		s.block.name = b
	}
	if !blockName.MatchString(s.block.name) {
		return nil, fmt.Errorf("block: %q: use letters, digits, '.', '_' and '-'", s.block.name)
	}
	switch st, _ := p["state"].(string); st {
	case "", "present":
	case "absent":
		s.absent = true
	default:
		return nil, fmt.Errorf("state: %q: want present or absent", st)
	}
	var raw []string
	switch e := p["entries"].(type) {
	case nil:
	case map[string]string:
		names := make([]string, 0, len(e))
		for n := range e {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if strings.ContainsAny(n, " \t") {
				return nil, fmt.Errorf("entries: name %q holds white space", n)
			}
			raw = append(raw, e[n]+" "+n)
		}
	case []string:
		raw = append(raw, e...)
	default:
		return nil, fmt.Errorf("entries: want a map of name → address or a list of \"ADDRESS NAME...\" lines")
	}
	if l, ok := p["lines"].([]string); ok {
		raw = append(raw, l...)
	}
	lines, err := hostsLines(raw)
	if err != nil {
		return nil, fmt.Errorf("entries: %w", err)
	}
	if len(lines) == 0 && !s.absent {
		return nil, fmt.Errorf("entries: no entries; give entries (or lines), or state: absent to remove the block")
	}
	s.lines = lines
	return s, nil
}

var (
	blockName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	hostName  = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$`)
)

// hostsLines checks "ADDRESS NAME..." entries and renders them as
// "ADDRESS NAME NAME" lines, each once, in the order given.
func hostsLines(raw []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, r := range raw {
		f := strings.Fields(r)
		if len(f) < 2 || strings.ContainsAny(r, "\n\r\x00") {
			return nil, fmt.Errorf("%q: want an address and at least one host name on one line", r)
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("%q: %q is not an IP address", r, f[0])
		}
		for _, n := range f[1:] {
			if !hostName.MatchString(n) {
				return nil, fmt.Errorf("%q: %q is not a host name", r, n)
			}
		}
		line := a.String() + " " + strings.Join(f[1:], " ")
		if !seen[line] {
			seen[line] = true
			out = append(out, line)
		}
	}
	return out, nil
}

func (s *hostsStep) Run(ctx context.Context, t *Target) (Outputs, error) {
	if s.absent {
		return nil, s.block.remove(ctx, t)
	}
	return nil, s.block.write(ctx, t, s.lines)
}

// Done reports the task done when the block holds exactly the lines (or,
// with state absent, is not there).
func (s *hostsStep) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	n, have, err := s.block.read(ctx, t)
	if err != nil {
		return false, nil, err
	}
	if s.absent {
		return n == 0, nil, nil
	}
	return n == 1 && equalLines(have, s.lines), nil, nil
}

func (s *hostsStep) Describe(t *Target) []string {
	if s.absent {
		return []string{fmt.Sprintf("remove block %q from %s", s.block.name, s.block.file)}
	}
	return []string{fmt.Sprintf("write block %q of %s: %s", s.block.name, s.block.file, strings.Join(s.lines, "; "))}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hostsBlock is one marked block of a hosts file.
type hostsBlock struct {
	file, name string
}

func (b hostsBlock) env(lines []string, state string) map[string]string {
	text := ""
	for _, l := range lines {
		text += l + "\n"
	}
	return map[string]string{
		"SF_HOSTS": b.file,
		"SF_BEGIN": "# BEGIN sealflow " + b.name,
		"SF_END":   "# END sealflow " + b.name,
		"SF_BLOCK": text,
		"SF_STATE": state,
	}
}

// hostsWriteScript copies the hosts file without the block into a temp
// file and appends the block (state present). The previous file is kept as
// FILE.sealflow-backup (removed with the block); the new one, written and compared in full next to
// it, is renamed over it, so a crash or a full disk leaves the old file or
// the new, never a truncated one. A mount point (Docker and the lab bind
// mount /etc/hosts) cannot be renamed over: it is written in place, only
// from the complete content, checked, and put back from the backup when
// the write fails.
const hostsWriteScript = `f=$SF_HOSTS
tmp=$(mktemp "${TMPDIR:-/tmp}/sealflow-hosts.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if [ -f "$f" ]; then
	if grep -qxF -e "$SF_BEGIN" "$f" && ! grep -qxF -e "$SF_END" "$f"; then
		echo "$f has the line \"$SF_BEGIN\" but not \"$SF_END\": fix the file by hand" >&2
		exit 3
	fi
	skip=0
	while IFS= read -r line || [ -n "$line" ]; do
		if [ "$skip" = 0 ] && [ "$line" = "$SF_BEGIN" ]; then skip=1; continue; fi
		if [ "$skip" = 1 ]; then
			if [ "$line" = "$SF_END" ]; then skip=0; fi
			continue
		fi
		printf '%s\n' "$line"
	done <"$f" >"$tmp"
fi
if [ "$SF_STATE" = present ]; then
	{ printf '%s\n' "$SF_BEGIN"; printf '%s' "$SF_BLOCK"; printf '%s\n' "$SF_END"; } >>"$tmp"
fi
if [ -f "$f" ] && cmp -s "$tmp" "$f"; then exit 0; fi
d=$(dirname -- "$f")
b=$(basename -- "$f")
if [ -f "$f" ]; then
	cp -p -- "$f" "$d/$b.sealflow-backup" || { echo "back up $f: failed; $f is unchanged" >&2; exit 4; }
fi
new=$(mktemp "$d/.$b.sealflow-XXXXXX") || { echo "create a temp file next to $f: failed; $f is unchanged" >&2; exit 4; }
trap 'rm -f "$tmp" "$new"' EXIT
if ! cat "$tmp" >"$new" || ! cmp -s "$tmp" "$new"; then
	echo "write the new $f (in $new): failed (disk full?); $f is unchanged" >&2
	exit 4
fi
if [ -f "$f" ]; then
	chmod "$(stat -c %a -- "$f")" "$new" && chown "$(stat -c %u:%g -- "$f")" "$new" 2>/dev/null
else
	chmod 0644 "$new"
fi
# Once the block is removed the backup goes too: the file is as it was.
finish() { if [ "$SF_STATE" = absent ]; then rm -f -- "$d/$b.sealflow-backup"; fi; exit 0; }
mv -f -- "$new" "$f" 2>/dev/null && finish
# A mount point (a container's /etc/hosts) cannot be renamed over (EBUSY):
# write it in place from the complete, checked content, and check again.
if ! cat "$new" >"$f" || ! cmp -s "$new" "$f"; then
	cat "$d/$b.sealflow-backup" >"$f" 2>/dev/null
	echo "write $f in place failed (disk full?); its previous content was put back from $d/$b.sealflow-backup" >&2
	exit 5
fi
finish
`

// hostsReadScript prints the number of blocks, then the first block's
// lines.
const hostsReadScript = `f=$SF_HOSTS
[ -f "$f" ] || { echo 0; exit 0; }
n=$(grep -cxF -e "$SF_BEGIN" "$f" || true)
echo "$n"
in=0
while IFS= read -r line || [ -n "$line" ]; do
	if [ "$in" = 0 ] && [ "$line" = "$SF_BEGIN" ]; then in=1; continue; fi
	if [ "$in" = 1 ]; then
		if [ "$line" = "$SF_END" ]; then break; fi
		printf '%s\n' "$line"
	fi
done <"$f"
`

func (b hostsBlock) write(ctx context.Context, t *Target, lines []string) error {
	return run(ctx, t, fmt.Sprintf("write block %q of %s", b.name, b.file), hostsWriteScript, b.env(lines, "present"))
}

func (b hostsBlock) remove(ctx context.Context, t *Target) error {
	return run(ctx, t, fmt.Sprintf("remove block %q from %s", b.name, b.file), hostsWriteScript, b.env(nil, "absent"))
}

// read returns how many blocks of this name the file has and the lines
// of the first.
func (b hostsBlock) read(ctx context.Context, t *Target) (int, []string, error) {
	out, err := output(ctx, t, fmt.Sprintf("read block %q of %s", b.name, b.file), hostsReadScript, b.env(nil, ""))
	if err != nil {
		return 0, nil, err
	}
	first, rest, _ := strings.Cut(out, "\n")
	var n int
	if _, err := fmt.Sscan(first, &n); err != nil {
		return 0, nil, fmt.Errorf("read block %q of %s: the host printed %q, want a count", b.name, b.file, firstLine(first))
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(rest, "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return n, lines, nil
}
