package steps

// Helpers the kinds run commands on a host with: the task's environment,
// its log, exit statuses turned into errors that say what was being done.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/sealflow/sealflow/internal/transport"
)

// mergeEnv returns one environment holding every variable of envs; a
// later map wins over an earlier one. The maps are not changed.
func mergeEnv(envs ...map[string]string) map[string]string {
	n := 0
	for _, e := range envs {
		n += len(e)
	}
	out := make(map[string]string, n)
	for _, e := range envs {
		for k, v := range e {
			out[k] = v
		}
	}
	return out
}

// run runs script on the host (as root when the target says so) with
// stdout and stderr going to the task log; a non-zero exit is an error
// naming what was being done.
func run(ctx context.Context, t *Target, what, script string, env map[string]string) error {
	return runTo(ctx, t, what, script, env, t.Log, t.Log)
}

func runTo(ctx context.Context, t *Target, what, script string, env map[string]string, stdout, stderr io.Writer) error {
	return execScript(ctx, t, what, script, env, nil, stdout, stderr)
}

// runInput is run with stdin feeding the script's standard input.
func runInput(ctx context.Context, t *Target, what, script string, env map[string]string, stdin io.Reader) error {
	return execScript(ctx, t, what, script, env, stdin, t.Log, t.Log)
}

func execScript(ctx context.Context, t *Target, what, script string, env map[string]string, stdin io.Reader, stdout, stderr io.Writer) error {
	res, err := t.Conn.Exec(ctx, transport.Command{
		Script: script,
		Env:    mergeEnv(t.Env, env),
		Stdin:  stdin,
		Stdout: stdout,
		Stderr: stderr,
		Become: t.Become,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%s: %w", what, &transport.ExitError{Code: res.ExitCode})
	}
	return nil
}

// output runs script and returns what it printed on stdout.
func output(ctx context.Context, t *Target, what, script string, env map[string]string) (string, error) {
	var out bytes.Buffer
	err := runTo(ctx, t, what, script, env, &out, t.Log)
	return out.String(), err
}

// remoteSum returns the hex sha256 of a file on the host, or "" when it
// is not a regular file.
func remoteSum(ctx context.Context, t *Target, file string) (string, error) {
	out, err := output(ctx, t, "sha256 of "+file, `[ -f "$SF_FILE" ] || exit 0
s=$(sha256sum <"$SF_FILE")
echo "${s%% *}"`, map[string]string{"SF_FILE": file})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

func logf(t *Target, format string, args ...any) {
	if t.Log != nil {
		fmt.Fprintf(t.Log, format, args...)
	}
}

// upload writes data to a 0600 file on the host.
func upload(ctx context.Context, t *Target, data []byte, dst string) error {
	sum := sha256.Sum256(data)
	if err := t.Conn.Upload(ctx, bytes.NewReader(data), dst, 0o600, hex.EncodeToString(sum[:])); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	return nil
}

// fileDest returns where a file named name lands for dest: dest itself,
// or dest/name when dest is a directory on the host (as cp does). The
// transports refuse a directory, so nothing lands inside one under
// another name.
func fileDest(ctx context.Context, t *Target, dest, name string) (string, error) {
	out, err := output(ctx, t, "check "+dest, `[ -d "$SF_DEST" ] && echo dir; exit 0`, map[string]string{"SF_DEST": dest})
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(out) != "dir" {
		return dest, nil
	}
	if name == "" || name == "." || name == "/" {
		return "", fmt.Errorf("dest %s is a directory and the file has no name to take in it; give the file's path", dest)
	}
	return path.Join(dest, name), nil
}
