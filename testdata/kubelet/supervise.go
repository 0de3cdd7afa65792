package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// backoff is the restart delay of a container that exited: Initial,
// doubled up to Max; back to Initial once a run lasted Reset.
type backoff struct{ Initial, Max, Reset time.Duration }

// supervisor runs the containers of static pods as host processes and
// keeps them running, as the kubelet's pod workers do with a runtime.
type supervisor struct {
	log      *slog.Logger
	stateDir string // pid files
	logDir   string // container logs (/var/log/pods)
	path     string // PATH the commands are looked up on
	backoff  backoff
	changed  func() // called after a container started or stopped; may be nil

	detachOnce sync.Once
	detach     chan struct{}
	wg         sync.WaitGroup

	mu      sync.Mutex
	pods    map[string]*podRun   // by pod UID
	orphans map[string]pidRecord // pid files found at start, not claimed by a pod yet
	synced  bool
}

// podRun is one static pod being run.
type podRun struct {
	pod  staticPod
	stop chan struct{} // closed: stop the pod's processes
	done chan struct{} // closed when all its loops returned

	mu     sync.Mutex
	status []containerStatus
}

// containerStatus is what the API server is told about a container.
type containerStatus struct {
	Name, Image  string
	Running      bool
	PID          int
	Started      time.Time
	Restarts     int
	Waiting      string // reason when not running
	Message      string
	LastExit     *int
	LastStarted  time.Time
	LastFinished time.Time
}

// podState is a snapshot of a pod and its containers.
type podState struct {
	Pod        staticPod
	Containers []containerStatus
}

func newSupervisor(log *slog.Logger, stateDir, logDir, path string, b backoff, changed func()) (*supervisor, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	recs, err := readRecords(stateDir)
	if err != nil {
		return nil, err
	}
	if changed == nil {
		changed = func() {}
	}
	return &supervisor{
		log: log, stateDir: stateDir, logDir: logDir, path: path, backoff: b, changed: changed,
		detach: make(chan struct{}), pods: map[string]*podRun{}, orphans: recs,
	}, nil
}

// Sync makes the running pods those of want: pods no longer wanted (a
// manifest removed or changed: a changed manifest is a new pod UID) are
// stopped first, then new ones started. Processes found from pid files
// that belong to a wanted pod are taken over; after the first Sync the
// others are stopped.
func (s *supervisor) Sync(want []staticPod) {
	wanted := map[string]bool{}
	for _, p := range want {
		wanted[p.UID] = true
	}
	s.mu.Lock()
	var stopping []*podRun
	for uid, r := range s.pods {
		if !wanted[uid] {
			s.log.Info("stopping static pod", "pod", r.pod.Namespace+"/"+r.pod.Name, "file", r.pod.File)
			close(r.stop)
			delete(s.pods, uid)
			stopping = append(stopping, r)
		}
	}
	s.mu.Unlock()
	for _, r := range stopping {
		<-r.done
	}

	s.mu.Lock()
	for _, p := range want {
		if _, ok := s.pods[p.UID]; ok {
			continue
		}
		adopted := map[string]pidRecord{}
		for _, c := range p.Containers {
			key := p.UID + "_" + c.Name
			if rec, ok := s.orphans[key]; ok {
				adopted[c.Name] = rec
				delete(s.orphans, key)
			}
		}
		r := &podRun{pod: p, stop: make(chan struct{}), done: make(chan struct{})}
		for _, c := range p.Containers {
			r.status = append(r.status, containerStatus{Name: c.Name, Image: c.Image, Waiting: "ContainerCreating"})
		}
		s.pods[p.UID] = r
		s.log.Info("starting static pod", "pod", p.Namespace+"/"+p.Name, "file", p.File, "uid", p.UID)
		s.wg.Add(1)
		go s.runPod(r, adopted)
	}
	var orphans []pidRecord
	if !s.synced {
		s.synced = true
		for _, rec := range s.orphans {
			orphans = append(orphans, rec)
		}
		s.orphans = nil
	}
	s.mu.Unlock()
	for _, rec := range orphans {
		s.log.Info("stopping a process of a static pod that is gone", "pod", rec.Pod, "container", rec.Container, "pid", rec.PID)
		if rec.alive() {
			terminate(rec.PID, nil, 30*time.Second, rec.alive)
		}
		_ = os.Remove(recordPath(s.stateDir, rec.PodUID, rec.Container))
	}
}

// Detach stops supervising and leaves the processes running, to be found
// again from their pid files (the real kubelet leaves its containers
// running when it stops).
func (s *supervisor) Detach() {
	s.detachOnce.Do(func() { close(s.detach) })
	s.wg.Wait()
}

// Pods returns the state of every pod, sorted by manifest file.
func (s *supervisor) Pods() []podState {
	s.mu.Lock()
	runs := make([]*podRun, 0, len(s.pods))
	for _, r := range s.pods {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	out := make([]podState, 0, len(runs))
	for _, r := range runs {
		r.mu.Lock()
		out = append(out, podState{Pod: r.pod, Containers: append([]containerStatus(nil), r.status...)})
		r.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod.File < out[j].Pod.File })
	return out
}

func (r *podRun) update(i int, f func(*containerStatus)) {
	r.mu.Lock()
	f(&r.status[i])
	r.mu.Unlock()
}

// runPod runs the init containers to completion (unless its containers
// were taken over), then every container in its own loop.
func (s *supervisor) runPod(r *podRun, adopted map[string]pidRecord) {
	defer s.wg.Done()
	defer close(r.done)
	if len(adopted) == 0 {
		for _, c := range r.pod.Init {
			if !s.runInit(r, c) {
				return
			}
		}
	}
	var wg sync.WaitGroup
	for i, c := range r.pod.Containers {
		var rec *pidRecord
		if a, ok := adopted[c.Name]; ok {
			rec = &a
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runContainer(r, i, c, rec)
		}()
	}
	wg.Wait()
}

// runInit runs an init container until it exits 0; false when the pod
// stopped or the supervisor detached first.
func (s *supervisor) runInit(r *podRun, c container) bool {
	delay := s.backoff.Initial
	for attempt := 0; ; attempt++ {
		p, err := s.start(r.pod, c, attempt)
		if err == nil {
			select {
			case <-p.exited:
				_ = os.Remove(recordPath(s.stateDir, r.pod.UID, c.Name))
				if p.code != nil && *p.code == 0 {
					return true
				}
				s.log.Warn("init container failed", "pod", r.pod.Namespace+"/"+r.pod.Name, "container", c.Name, "exit", p.describe())
			case <-r.stop:
				terminate(p.pid, p.exited, r.pod.Grace, nil)
				_ = os.Remove(recordPath(s.stateDir, r.pod.UID, c.Name))
				return false
			case <-s.detach:
				return false
			}
		} else {
			s.log.Error("cannot start init container", "pod", r.pod.Namespace+"/"+r.pod.Name, "container", c.Name, "err", err)
		}
		if !s.sleep(r, delay) {
			return false
		}
		delay = min(delay*2, s.backoff.Max)
	}
}

// runContainer keeps container i of r running until the pod stops or the
// supervisor detaches. rec, when set, is a process to take over.
func (s *supervisor) runContainer(r *podRun, i int, c container, rec *pidRecord) {
	name := r.pod.Namespace + "/" + r.pod.Name
	delay := s.backoff.Initial
	restarts := 0
	if rec != nil {
		restarts = rec.Restarts
	}
	for {
		var p *process
		if rec != nil && rec.alive() {
			p = adopt(*rec, s.detach)
			s.log.Info("took over a running container", "pod", name, "container", c.Name, "pid", rec.PID)
		} else {
			var err error
			p, err = s.start(r.pod, c, restarts)
			if err != nil {
				s.log.Error("cannot start container", "pod", name, "container", c.Name, "err", err)
				r.update(i, func(st *containerStatus) {
					st.Running, st.Waiting, st.Message = false, "CreateContainerError", err.Error()
				})
				s.changed()
				if !s.sleep(r, delay) {
					return
				}
				delay = min(delay*2, s.backoff.Max)
				continue
			}
		}
		rec = nil
		r.update(i, func(st *containerStatus) {
			st.Running, st.PID, st.Started, st.Restarts, st.Waiting, st.Message = true, p.pid, p.started, restarts, "", ""
		})
		s.changed()
		select {
		case <-p.exited:
		case <-r.stop:
			terminate(p.pid, p.exited, r.pod.Grace, p.alive)
			_ = os.Remove(recordPath(s.stateDir, r.pod.UID, c.Name))
			return
		case <-s.detach:
			return
		}
		_ = os.Remove(recordPath(s.stateDir, r.pod.UID, c.Name))
		ran := time.Since(p.started)
		if ran >= s.backoff.Reset {
			delay = s.backoff.Initial
		}
		s.log.Warn("container exited; restarting after a delay", "pod", name, "container", c.Name, "exit", p.describe(), "ran", ran.Round(time.Millisecond), "delay", delay)
		finished := time.Now()
		r.update(i, func(st *containerStatus) {
			st.Running, st.Waiting, st.Message = false, "CrashLoopBackOff", "back-off "+delay.String()+" restarting failed container"
			st.LastExit, st.LastStarted, st.LastFinished = p.code, p.started, finished
		})
		s.changed()
		restarts++
		if !s.sleep(r, delay) {
			return
		}
		delay = min(delay*2, s.backoff.Max)
	}
}

// sleep waits d; false when the pod stopped or the supervisor detached.
func (s *supervisor) sleep(r *podRun, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stop:
		return false
	case <-s.detach:
		return false
	}
}

// process is a running container process: started here (a child) or
// taken over from a pid file.
type process struct {
	pid     int
	started time.Time
	exited  chan struct{}
	code    *int // exit code when known (children only)
	signal  string
	alive   func() bool
}

func (p *process) describe() string {
	switch {
	case p.code != nil:
		return "code " + strconv.Itoa(*p.code)
	case p.signal != "":
		return "signal " + p.signal
	}
	return "unknown (not a child of this kubelet)"
}

// start starts container c of pod as a session leader (it outlives the
// kubelet), output to its log file, and writes its pid file.
func (s *supervisor) start(pod staticPod, c container, restarts int) (*process, error) {
	bin, err := lookPath(c.Argv[0], s.path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.logDir, pod.Namespace+"_"+pod.Name+"_"+pod.UID, c.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	_ = os.Remove(filepath.Join(dir, strconv.Itoa(restarts-2)+".log"))
	logf, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(restarts)+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := &exec.Cmd{
		Path: bin, Args: c.Argv, Env: c.Env, Dir: c.Dir, Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(c.Argv, " "), err)
	}
	p := &process{pid: cmd.Process.Pid, started: time.Now(), exited: make(chan struct{})}
	tick, _ := startTick(p.pid)
	rec := pidRecord{PodUID: pod.UID, Pod: pod.Namespace + "/" + pod.Name, Container: c.Name, PID: p.pid, StartTick: tick, Started: p.started, Restarts: restarts}
	p.alive = rec.alive
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.signal = ws.Signal().String()
			} else {
				code := ee.ExitCode()
				p.code = &code
			}
		} else if err == nil {
			code := 0
			p.code = &code
		}
		close(p.exited)
	}()
	if err := writeRecord(s.stateDir, rec); err != nil {
		s.log.Error("cannot keep the pid of a container: a restarted kubelet will not find it", "pod", rec.Pod, "container", c.Name, "err", err)
	}
	return p, nil
}

// adopt watches a process started by an earlier run of the kubelet.
func adopt(rec pidRecord, quit <-chan struct{}) *process {
	p := &process{pid: rec.PID, started: rec.Started, exited: make(chan struct{}), alive: rec.alive}
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for rec.alive() {
			select {
			case <-t.C:
			case <-quit:
				return
			}
		}
		close(p.exited)
	}()
	return p
}

// terminate stops the process group of pid: SIGTERM, then SIGKILL after
// grace. exited (or alive, polled) says when it is gone.
func terminate(pid int, exited <-chan struct{}, grace time.Duration, alive func() bool) {
	gone := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for {
			if exited != nil {
				select {
				case <-exited:
					return true
				default:
				}
			} else if alive != nil && !alive() {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	signalGroup(pid, syscall.SIGTERM)
	if gone(grace) {
		return
	}
	signalGroup(pid, syscall.SIGKILL)
	gone(5 * time.Second)
}

// lookPath finds name on path (a PATH value), as a container runtime
// resolves a command in the image's PATH.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("command %s: not an executable file", name)
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found on PATH %s (is the package installed?)", name, path)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
