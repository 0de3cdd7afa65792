package steps

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// untarMarker is the file in the destination that records which tarball
// was extracted there: its sha256, then the top-level entries it made.
const untarMarker = ".sealflow-untar"

// untarKind extracts a tarball that is on the host.
func untarKind() *Kind {
	return &Kind{
		Name: "untar",
		Doc:  "extract a tarball on the host into a directory (skipped when that tarball was already extracted there)",
		Params: []Param{
			{Name: "src", Type: String, Required: true, Doc: "the tarball on the host (gzip, xz, bzip2 or plain)"},
			{Name: "dest", Type: String, Required: true, Doc: "the directory to extract into"},
			{Name: "checksums", Type: String, Doc: "a sha256sum list in the tarball, relative to dest (kube/SHA256SUMS): the unpacked files must match it"},
		},
		Rerunnable: true,
		New:        newUntar,
	}
}

type untar struct {
	src, dest, checksums string
}

func newUntar(p Params) (Step, error) {
	s := &untar{}
	s.src, _ = p["src"].(string)
	s.dest, _ = p["dest"].(string)
	s.checksums, _ = p["checksums"].(string)
	if s.checksums != "" && !relativePath(s.checksums) {
		return nil, fmt.Errorf("checksums %q: a path relative to dest, such as kube/SHA256SUMS", s.checksums)
	}
	if err := checkRemotePath("src", s.src); err != nil {
		return nil, err
	}
	if err := checkRemotePath("dest", s.dest); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *untar) env() map[string]string {
	return map[string]string{"SF_SRC": s.src, "SF_DEST": s.dest, "SF_MARKER": untarMarker, "SF_SUMS": s.checksums}
}

// untarScript removes the old marker first, so that an interrupted
// extraction is never taken for a finished one, and writes the new one
// last.
const untarScript = `[ -f "$SF_SRC" ] || { echo "$SF_SRC: no such file (distribute it first)" >&2; exit 3; }
s=$(sha256sum <"$SF_SRC"); s=${s%% *}
mkdir -p -- "$SF_DEST"
rm -f -- "$SF_DEST/$SF_MARKER"
list=$(mktemp "${TMPDIR:-/tmp}/sealflow-untar.XXXXXX")
trap 'rm -f "$list"' EXIT
tar -xvf "$SF_SRC" -C "$SF_DEST" >"$list"
if [ -n "$SF_SUMS" ]; then
	sed 's|^\./||' "$list" | grep -qxF -- "$SF_SUMS" || { echo "$SF_DEST/$SF_SUMS is not in $SF_SRC: is it a package built by sealflow package build?" >&2; exit 4; }
	bad=$(cd "$SF_DEST" && sha256sum --quiet -c -- "$SF_SUMS" 2>&1 | head -n 1) || :
	[ -z "$bad" ] || { echo "the unpacked files do not match $SF_SUMS: $bad" >&2; exit 4; }
fi
{
	echo "$s"
	sed -e 's|^\./||' -e 's|/.*||' "$list" | grep -v -e '^$' -e '^\.$' | sort -u
} >"$SF_DEST/$SF_MARKER.tmp"
mv -f -- "$SF_DEST/$SF_MARKER.tmp" "$SF_DEST/$SF_MARKER"
echo "$s"
`

// untarCheckScript prints "done" when the marker names the tarball's
// current sha256 and every top-level entry it lists still exists.
const untarCheckScript = `m="$SF_DEST/$SF_MARKER"
[ -f "$m" ] && [ -f "$SF_SRC" ] || exit 0
s=$(sha256sum <"$SF_SRC"); s=${s%% *}
first=1
while IFS= read -r e || [ -n "$e" ]; do
	if [ "$first" = 1 ]; then
		[ "$e" = "$s" ] || exit 0
		first=0
		continue
	fi
	[ -e "$SF_DEST/$e" ] || [ -L "$SF_DEST/$e" ] || exit 0
done <"$m"
if [ "$first" = 0 ]; then echo "done $s"; fi
`

func (s *untar) Run(ctx context.Context, t *Target) (Outputs, error) {
	out, err := output(ctx, t, fmt.Sprintf("extract %s into %s", s.src, s.dest), untarScript, s.env())
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sum := lines[len(lines)-1]
	if !hexSum.MatchString(sum) {
		return nil, fmt.Errorf("extract %s into %s: the host printed %q, want a sha256", s.src, s.dest, firstLine(out))
	}
	return Outputs{"dir": s.dest, "sha256": sum}, nil
}

func (s *untar) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	out, err := output(ctx, t, fmt.Sprintf("check %s/%s", s.dest, untarMarker), untarCheckScript, s.env())
	if err != nil {
		return false, nil, err
	}
	sum, ok := strings.CutPrefix(strings.TrimSpace(out), "done ")
	if !ok || !hexSum.MatchString(sum) {
		return false, nil, nil
	}
	return true, Outputs{"dir": s.dest, "sha256": sum}, nil
}

func (s *untar) Describe(t *Target) []string {
	d := fmt.Sprintf("extract %s into %s (skipped when already extracted)", s.src, s.dest)
	if s.checksums != "" {
		d += ", check every file against " + s.checksums
	}
	return []string{d}
}

// relativePath is a clean path that stays below where it is joined.
func relativePath(p string) bool {
	c := path.Clean(p)
	return p != "" && !path.IsAbs(p) && c != "." && c != ".." && !strings.HasPrefix(c, "../")
}
