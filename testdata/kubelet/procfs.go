package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidRecord is what the stand-in keeps of a running container process in
// its state directory, so that it finds the process again after it
// restarted (like the real kubelet finds its containers in the runtime).
type pidRecord struct {
	PodUID    string    `json:"podUID"`
	Pod       string    `json:"pod"` // namespace/name
	Container string    `json:"container"`
	PID       int       `json:"pid"`
	StartTick uint64    `json:"startTick"` // /proc/PID/stat start time: guards against PID reuse
	Started   time.Time `json:"started"`
	Restarts  int       `json:"restarts"`
}

func recordPath(dir, podUID, container string) string {
	return filepath.Join(dir, podUID+"_"+container+".json")
}

func writeRecord(dir string, r pidRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	p := recordPath(dir, r.PodUID, r.Container)
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// readRecords reads the pid files of dir; unreadable ones are removed.
func readRecords(dir string) (map[string]pidRecord, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]pidRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pid files: %w", err)
	}
	out := map[string]pidRecord{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		var r pidRecord
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil || r.PID <= 0 {
			_ = os.Remove(p)
			continue
		}
		out[r.PodUID+"_"+r.Container] = r
	}
	return out, nil
}

// startTick returns the start time of pid (field 22 of /proc/PID/stat) and
// whether the process is alive (not gone, not a zombie).
func startTick(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return t, true
}

// alive reports whether r's process still runs (same PID, same start).
func (r pidRecord) alive() bool {
	t, ok := startTick(r.PID)
	return ok && t == r.StartTick
}

// signalGroup signals the process group led by pid (each container process
// is a session and group leader).
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}
