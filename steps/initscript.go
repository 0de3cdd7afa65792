package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/sealflow/sealflow/internal/transport"
)

// initScriptKind runs the package's install script (kube/shell/init.sh)
// once per script content, package and environment.
func initScriptKind() *Kind {
	return &Kind{
		Name: "init-script",
		Doc:  "run the offline package's install script (shell/init.sh) in its directory; skipped when it already ran for this script, package and env",
		Params: []Param{
			{Name: "dir", Type: String, Required: true, Doc: "the package directory on the host, e.g. /root/kube"},
			{Name: "script", Type: String, Doc: "the script, relative to dir or absolute (default shell/init.sh)"},
			{Name: "env", Type: StringMap, Doc: "environment variables for the script"},
		},
		New: func(p Params) (Step, error) { return newInitScript(p, defaultPaths()) },
	}
}

type initScript struct {
	dir, script string
	env         map[string]string
	paths       sysPaths
}

func newInitScript(p Params, paths sysPaths) (*initScript, error) {
	s := &initScript{paths: paths}
	s.dir, _ = p["dir"].(string)
	if err := checkRemotePath("dir", s.dir); err != nil {
		return nil, err
	}
	s.dir = path.Clean(s.dir)
	script, _ := p["script"].(string)
	if script == "" {
		script = "shell/init.sh"
	}
	if strings.ContainsAny(script, "\n\r\x00") {
		return nil, fmt.Errorf("script: %q holds a line break or NUL byte", script)
	}
	if !path.IsAbs(script) {
		script = path.Join(s.dir, script)
	}
	s.script = path.Clean(script)
	s.env, _ = p["env"].(map[string]string)
	for k := range s.env {
		if !transport.ValidEnvName(k) || strings.HasPrefix(k, "SF_") {
			return nil, fmt.Errorf("env: %q is not a usable variable name (letters, digits, '_'; not starting with SF_)", k)
		}
	}
	return s, nil
}

// marker is where the record of a finished run is kept.
func (s *initScript) marker() string {
	h := sha256.Sum256([]byte(s.dir + "\x00" + s.script))
	return path.Join(s.paths.State, "init-script", hex.EncodeToString(h[:16]))
}

// envSum identifies the environment the script ran with.
func (s *initScript) envSum() string {
	keys := make([]string, 0, len(s.env))
	for k := range s.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, s.env[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *initScript) scriptEnv() map[string]string {
	return mergeEnv(s.env, map[string]string{
		"SF_DIR":    s.dir,
		"SF_SCRIPT": s.script,
		"SF_MARKER": s.marker(),
		"SF_ENVSUM": s.envSum(),
		"SF_UNTAR":  untarMarker,
	})
}

// initStamp prints what the marker holds: the script's sha256, the
// package's (from the untar marker in dir or its parent) and the env's.
const initStamp = `stamp() {
	s=$(sha256sum <"$SF_SCRIPT"); s=${s%% *}
	p=none
	for m in "$SF_DIR/$SF_UNTAR" "$(dirname -- "$SF_DIR")/$SF_UNTAR"; do
		if [ -f "$m" ]; then p=$(head -n 1 "$m"); break; fi
	done
	printf 'script %s\npackage %s\nenv %s\n' "$s" "$p" "$SF_ENVSUM"
}
`

// runFileFunc runs a script file: directly when executable, else with
// the interpreter of its #! line, else with sh.
const runFileFunc = `runfile() {
	if [ -x "$1" ]; then "$1"; return; fi
	first=
	IFS= read -r first <"$1" || true
	case $first in
	'#!'*) ${first#??} "$1" ;;
	*) sh "$1" ;;
	esac
}
`

const initRunScript = initStamp + runFileFunc + `[ -f "$SF_SCRIPT" ] || { echo "$SF_SCRIPT: no such file (is the package extracted into $SF_DIR?)" >&2; exit 3; }
rm -f -- "$SF_MARKER"
cd -- "$(dirname -- "$SF_SCRIPT")"
runfile "$SF_SCRIPT"
mkdir -p -- "$(dirname -- "$SF_MARKER")"
stamp >"$SF_MARKER.tmp"
mv -f -- "$SF_MARKER.tmp" "$SF_MARKER"
`

const initCheckScript = initStamp + `[ -f "$SF_SCRIPT" ] && [ -f "$SF_MARKER" ] || exit 0
if [ "$(stamp)" = "$(cat "$SF_MARKER")" ]; then echo done; fi
`

func (s *initScript) Run(ctx context.Context, t *Target) (Outputs, error) {
	logf(t, "run %s in %s\n", s.script, path.Dir(s.script))
	if err := run(ctx, t, "run "+s.script, initRunScript, s.scriptEnv()); err != nil {
		return nil, err
	}
	return nil, nil
}

// Done reports the task done when the marker records this script,
// package and env.
func (s *initScript) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	out, err := output(ctx, t, "check "+s.marker(), initCheckScript, s.scriptEnv())
	if err != nil {
		return false, nil, err
	}
	return strings.TrimSpace(out) == "done", nil, nil
}

func (s *initScript) Describe(t *Target) []string {
	return []string{fmt.Sprintf("run %s in %s", s.script, path.Dir(s.script))}
}
