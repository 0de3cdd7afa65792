package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultDir is the state directory used when none is given.
const DefaultDir = ".sealflow"

// Names of the run files `sealflow run` saves so that `resume` needs no
// arguments. Discard removes these.
const (
	PlanFile      = "plan.yaml"
	InventoryFile = "inventory.yaml"
	VarsFile      = "vars.json"
	MetaFile      = "run.json" // the plan's name and where it was read from
	// SecretVarsFile holds the --set values of secret vars, each sealed
	// with the state key (SealValue).
	SecretVarsFile = "secret-vars.json"
)

const logsDir = "logs"

// checkRunFile refuses names that are not plain files of the state
// directory or that belong to the journal itself.
func checkRunFile(name string) error {
	switch {
	case name == "", name == ".", name == "..",
		strings.ContainsAny(name, "/\x00"), strings.HasPrefix(name, "."):
		return fmt.Errorf("run file name %q: must be a plain file name such as %s", name, PlanFile)
	case name == journalFile, name == lockFile, name == keyFile, name == logsDir:
		return fmt.Errorf("run file name %q: reserved for the state directory itself", name)
	}
	return nil
}

// SaveRun writes the run's files (plan.yaml, inventory.yaml, vars.json ...)
// into the state directory, each atomically (temporary file, fsync, rename),
// then fsyncs the directory. Files are private (0600).
func (s *State) SaveRun(files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for name := range files {
		if err := checkRunFile(name); err != nil {
			return fmt.Errorf("save run files: %w", err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return fmt.Errorf("save run files in %s: state is closed", s.dir)
	}
	for _, name := range names {
		if err := writeAtomic(s.dir, name, files[name]); err != nil {
			return fmt.Errorf("save run file %s: %w", filepath.Join(s.dir, name), err)
		}
	}
	return syncDir(s.dir)
}

func writeAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

// ReadRunFile returns a file saved by SaveRun. A missing file is an error
// wrapping fs.ErrNotExist.
func (s *State) ReadRunFile(name string) ([]byte, error) { return readRunFile(s.dir, name) }

func readRunFile(dir, name string) ([]byte, error) {
	if err := checkRunFile(name); err != nil {
		return nil, fmt.Errorf("read run file: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("read run file: %w", err)
	}
	return b, nil
}

// LogPath returns where the output of step on host is kept:
// DIR/logs/STEP/HOST.log. Names are escaped for the file system ('/', NUL,
// control characters and '%' become %XX; "." and ".." cannot occur), so
// every (step, host) has its own file inside DIR/logs. The directories are
// not created.
func (s *State) LogPath(step, host string) string {
	return filepath.Join(s.dir, logsDir, fileName(step), fileName(host)+".log")
}

// fileName escapes s into one path element, injectively.
func fileName(s string) string {
	switch s {
	case "":
		return "%"
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == '%' || c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	// Keep within the usual 255-byte limit of a file name (with ".log").
	if len(out) > 200 {
		sum := sha256.Sum256([]byte(s))
		out = out[:160] + "%" + hex.EncodeToString(sum[:16])
	}
	return out
}
