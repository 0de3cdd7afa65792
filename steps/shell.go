package steps

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/sealflow/sealflow/internal/transport"
)

// shellKind runs a script with `sh -e`. The script may write key=value
// lines to the file named by $SEALFLOW_OUTPUT; they become the task's
// outputs.
func shellKind() *Kind {
	return &Kind{
		Name: "shell",
		Doc:  "run a script with sh -e; key=value lines written to $SEALFLOW_OUTPUT become outputs",
		Params: []Param{
			{Name: "run", Type: String, Required: true, Doc: "the script"},
			{Name: "env", Type: StringMap, Doc: "extra environment variables"},
			{Name: "secret_outputs", Type: StringList, Doc: "outputs whose values are secrets"},
			{Name: "creates", Type: String, Doc: "a path the script creates; when it exists the task is done (safe to resume)"},
			{Name: "rerunnable", Type: Bool, Doc: "the script is safe to run twice (an interrupted task simply runs again)"},
			{Name: "outputs", Type: Bool, Doc: "the script writes outputs through another program (not needed when run names $SEALFLOW_OUTPUT or $SEALFLOW_TMP)"},
		},
		New: newShell,
	}
}

type shell struct {
	run        string
	env        map[string]string
	creates    string
	rerunnable bool
	// outputs says the script may write $SEALFLOW_OUTPUT: only then is
	// it run with an outputs file (in the transport's private directory,
	// which costs the host two more programs).
	outputs bool
}

func newShell(p Params) (Step, error) {
	s := &shell{}
	s.run, _ = p["run"].(string)
	if strings.TrimSpace(s.run) == "" {
		return nil, fmt.Errorf("run: the script is empty")
	}
	s.env, _ = p["env"].(map[string]string)
	s.creates, _ = p["creates"].(string)
	s.rerunnable, _ = p["rerunnable"].(bool)
	s.outputs, _ = p["outputs"].(bool)
	secrets, _ := p["secret_outputs"].([]string)
	s.outputs = s.outputs || len(secrets) > 0 ||
		strings.Contains(s.run, "SEALFLOW_OUTPUT") || strings.Contains(s.run, "SEALFLOW_TMP")
	return s, nil
}

// Run runs the script and reads back its outputs. The output file is
// created and removed by the same command, so nothing is left on the host.
func (s *shell) Run(ctx context.Context, t *Target) (Outputs, error) {
	if !s.outputs {
		// The script is the command: the transport runs it with sh -e.
		res, err := t.Conn.Exec(ctx, transport.Command{
			Script: s.run,
			Env:    mergeEnv(t.Env, s.env),
			Stdout: t.Log,
			Stderr: t.Log,
			Become: t.Become,
		})
		if err != nil {
			return nil, err
		}
		if res.ExitCode != 0 {
			return nil, &transport.ExitError{Code: res.ExitCode}
		}
		return Outputs{}, nil
	}
	env := mergeEnv(t.Env, s.env, map[string]string{"SEALFLOW_SCRIPT": s.run})
	// The user's script runs in a child `sh -e` so that its exit status,
	// not the wrapper's, decides; the outputs are printed on fd 3, which
	// the wrapper sends to its own stdout after the log has been written.
	var outputs bytes.Buffer
	var stdout = &splitWriter{log: t.Log, out: &outputs}
	res, err := t.Conn.Exec(ctx, transport.Command{
		Script: shellWrapper,
		Env:    env,
		Stdout: stdout,
		Stderr: t.Log,
		Become: t.Become,
	})
	outs := stdout.outputs() // also flushes what is left for the log
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, &transport.ExitError{Code: res.ExitCode}
	}
	return parseOutputs(outs)
}

// Done reports the task done when the path named by `creates` exists.
func (s *shell) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	if s.creates == "" {
		return false, nil, nil
	}
	res, err := t.Conn.Exec(ctx, transport.Command{
		Script: `test -e "$SEALFLOW_CREATES"`,
		Env:    map[string]string{"SEALFLOW_CREATES": s.creates},
		Become: t.Become,
	})
	if err != nil {
		return false, nil, err
	}
	return res.ExitCode == 0, nil, nil
}

func (s *shell) Describe(t *Target) []string {
	return []string{"sh -e: " + firstLine(s.run)}
}

// CanCheck reports whether Done can answer (a `creates` path is set).
func (s *shell) CanCheck() bool { return s.creates != "" }

// Rerunnable reports whether the plan says the script is safe to run twice.
func (s *shell) Rerunnable() bool { return s.rerunnable }

const outputMarker = "\x00sealflow-outputs\x00"

// shellWrapper runs $SEALFLOW_SCRIPT with errexit in a subshell (as `sh
// -e -c` would, without starting another shell), its outputs file in the
// transport's private directory, then prints a marker and the outputs with
// builtins only.
const shellWrapper = `o=${SEALFLOW_TMP:?the transport gives no private directory}/outputs
: >"$o"
export SEALFLOW_OUTPUT="$o"
set +e
(set -e; eval "$SEALFLOW_SCRIPT")
rc=$?
set -e
if [ "$rc" -ne 0 ]; then exit "$rc"; fi
printf '\000sealflow-outputs\000'
while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done <"$o"
`

// splitWriter sends everything before the outputs marker to log and the
// rest to out.
type splitWriter struct {
	log    interface{ Write([]byte) (int, error) }
	out    *bytes.Buffer
	buf    []byte // tail that may hold a partial marker
	marked bool
}

func (w *splitWriter) Write(p []byte) (int, error) {
	if w.marked {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	for !w.marked {
		if i := bytes.Index(w.buf, []byte(outputMarker)); i >= 0 {
			w.flush(w.buf[:i])
			w.out.Write(w.buf[i+len(outputMarker):])
			w.buf = nil
			w.marked = true
			break
		}
		// Flush everything before a NUL byte at once; keep back only
		// what could be the start of the marker.
		i := bytes.IndexByte(w.buf, 0)
		if i < 0 {
			w.flush(w.buf)
			w.buf = w.buf[:0]
			break
		}
		w.flush(w.buf[:i])
		w.buf = append(w.buf[:0], w.buf[i:]...)
		if len(w.buf) < len(outputMarker) {
			break
		}
		// A NUL that does not start the marker: pass it on, look again.
		w.flush(w.buf[:1])
		w.buf = append(w.buf[:0], w.buf[1:]...)
	}
	return len(p), nil
}

func (w *splitWriter) flush(p []byte) {
	if w.log != nil && len(p) > 0 {
		w.log.Write(p)
	}
}

func (w *splitWriter) outputs() []byte {
	if !w.marked {
		w.flush(w.buf)
		w.buf = nil
	}
	return w.out.Bytes()
}

// parseOutputs reads key=value lines; blank lines and lines starting
// with # are ignored.
func parseOutputs(b []byte) (Outputs, error) {
	out := Outputs{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !transport.ValidEnvName(k) {
			return nil, fmt.Errorf("$SEALFLOW_OUTPUT line %d: want key=value with a key of letters, digits and '_', got %q", n, firstLine(line))
		}
		out[k] = v
	}
	return out, sc.Err()
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
