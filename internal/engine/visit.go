package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/redact"
	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/steps"
)

// visit runs one task: decide (when, journal, --skip), then execute with
// retries. It returns an error only when the task failed.
func (r *runner) visit(ctx context.Context, id TaskID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := r.task(id)
	env := r.env(t)
	run, err := t.step.EvalWhen(env)
	if err != nil {
		return r.failEarly(id, fmt.Errorf("when: %w", err))
	}
	if !run {
		fp := r.fingerprint(t, nil)
		if err := r.append(journal.Record{Event: journal.Skipped, Step: id.Step, Host: id.Host, Fingerprint: fp, Note: "when is false"}); err != nil {
			return r.failEarly(id, err)
		}
		r.finish(id, fp, nil)
		r.setStatus(id, StatusSkipped)
		r.emit(Event{Type: EventTaskSkipped, Task: id.String(), Step: id.Step, Host: id.Host, Note: "when is false"})
		return nil
	}
	params, err := t.step.Render(env)
	if err != nil {
		return r.failEarly(id, err)
	}
	fp := r.fingerprint(t, params)
	p := r.prior[id]
	// An interrupted task that is not safe to run twice was asked about
	// before the run started (checkInterrupted): here it is decided.
	v := Decide(DecideInput{Prior: p.typed(), Fingerprint: fp, PriorFP: p.fingerprint(),
		Rerun: r.rerun[id], Skip: r.skip[id], SafeToRerun: true, EveryRun: t.kind.EveryRun})
	switch v.Decision {
	case DecideSkip:
		for _, rec := range []journal.Record{
			{Event: journal.Decided, Step: id.Step, Host: id.Host, Note: "skip"},
			{Event: journal.Done, Step: id.Step, Host: id.Host, Fingerprint: fp, Note: "skipped by --skip"},
		} {
			if err := r.append(rec); err != nil {
				return r.failEarly(id, err)
			}
		}
		r.finish(id, fp, nil)
		r.setStatus(id, StatusSkipped)
		r.emit(Event{Type: EventTaskSkipped, Task: id.String(), Step: id.Step, Host: id.Host, Note: "--skip"})
		return nil
	case DecideUnchanged:
		r.secrets.Add(p.secretValues()...)
		r.finish(id, fp, p.outputs)
		r.mu.Lock()
		res := r.result(id)
		res.Status, res.Attempts, res.Duration = StatusCached, p.attempts, p.duration
		r.mu.Unlock()
		r.emit(Event{Type: EventTaskCached, Task: id.String(), Step: id.Step, Host: id.Host, Note: "done in an earlier run"})
		return nil
	}
	if r.rerun[id] {
		if err := r.append(journal.Record{Event: journal.Decided, Step: id.Step, Host: id.Host, Note: "rerun"}); err != nil {
			return r.failEarly(id, err)
		}
	}
	step, err := t.kind.New(params)
	if err != nil {
		return r.failEarly(id, fmt.Errorf("%s: %w", t.step.Pos, err))
	}
	// Attempts count on across runs until the task is done; a done task
	// that runs again (its fingerprint changed, or --rerun) starts anew.
	before := 0
	if p != nil && p.state != journal.Done {
		before = p.attempts
	}
	return r.execute(ctx, t, step, fp, t.step.Secrets(params), before)
}

// Durability: a "started" record must be on disk before a task that is
// not safe to run twice starts, so a crash leaves a trace that makes
// resume ask. Every other record is queued: records reach the file in
// order, so each is durable once a later record is (or the state is
// closed), and losing one to a crash only means a safe re-run.

// execute runs the step with retries and journals each attempt.
func (r *runner) execute(ctx context.Context, t *task, step steps.Step, fp string, secretKeys []string, before int) error {
	id := t.id
	logPath := r.opts.State.LogPath(id.Step, id.Host)
	logFile := &lazyLog{path: logPath}
	defer logFile.Close()
	defer r.noteLostLog(id, logFile, logPath)
	log := redact.NewWriter(logFile, r.secrets)
	target := &steps.Target{
		Host: steps.Host{Name: t.host.Name, Address: t.host.Address, Groups: t.host.Groups, Labels: t.host.Labels},
		Log:  log,
		Env: map[string]string{
			"SEALFLOW_HOST": t.host.Name,
			"SEALFLOW_STEP": id.Step,
		},
		Become:    t.host.Become,
		Secrets:   r.secrets,
		StepHosts: r.stepTasks[id.Step],
	}
	if t.step.Become != nil {
		target.Become = *t.step.Become
	}
	target.Progress = r.progress(id)
	safe := steps.SafeToRerun(t.kind, step)
	start := r.now()
	for a := 1; ; a++ {
		attempt := before + a
		started := journal.Record{Event: journal.Started, Step: id.Step, Host: id.Host, Attempt: attempt, Fingerprint: fp}
		if err := r.record(started, !safe); err != nil {
			return r.failEarly(id, err)
		}
		r.mu.Lock()
		r.result(id).Attempts = attempt
		r.mu.Unlock()
		r.emit(Event{Type: EventTaskStart, Task: id.String(), Step: id.Step, Host: id.Host, Attempt: attempt, LogPath: logPath})
		logFile.header = fmt.Sprintf("=== %s attempt %d at %s\n", id, attempt, r.now().Format(time.RFC3339))
		outputs, found, err := r.attempt(ctx, t, step, target)
		log.Flush()
		elapsed := r.now().Sub(start)
		if err == nil {
			return r.succeed(id, fp, attempt, elapsed, outputs, secretKeys, found, logPath)
		}
		fmt.Fprintf(log, "=== attempt %d failed: %v\n", attempt, err)
		log.Flush()
		if ctx.Err() != nil {
			r.append(journal.Record{Event: journal.Failed, Step: id.Step, Host: id.Host, Attempt: attempt, Error: r.secrets.Redact(err.Error()), Duration: elapsed, Note: noteInterrupted})
			r.setFailed(id, err, elapsed)
			return err
		}
		// A command cut off with its connection may have done its work:
		// that is no failure to retry but an unknown end, decided like an
		// interrupted task (check, safe to re-run, or ask).
		if errors.Is(err, transport.ErrOutcomeUnknown) && !safe {
			r.append(journal.Record{Event: journal.Failed, Step: id.Step, Host: id.Host, Attempt: attempt, Error: r.secrets.Redact(err.Error()), Duration: elapsed, Note: noteUnknown})
			r.setFailed(id, err, elapsed)
			r.emit(Event{Type: EventTaskFailed, Task: id.String(), Step: id.Step, Host: id.Host, Attempt: attempt, Duration: elapsed, Error: err.Error(), Note: noteUnknown, LogPath: logPath})
			return err
		}
		if a > t.step.Retries {
			r.append(journal.Record{Event: journal.Failed, Step: id.Step, Host: id.Host, Attempt: attempt, Error: r.secrets.Redact(err.Error()), Duration: elapsed})
			r.setFailed(id, err, elapsed)
			r.emit(Event{Type: EventTaskFailed, Task: id.String(), Step: id.Step, Host: id.Host, Attempt: attempt, Duration: elapsed, Error: err.Error(), LogPath: logPath})
			return err
		}
		delay := backoff(r.opts.RetryBase, a)
		r.emit(Event{Type: EventTaskRetry, Task: id.String(), Step: id.Step, Host: id.Host, Attempt: attempt, Error: err.Error(), Note: "retry in " + delay.String(), LogPath: logPath})
		select {
		case <-ctx.Done():
			r.append(journal.Record{Event: journal.Failed, Step: id.Step, Host: id.Host, Attempt: attempt, Error: r.secrets.Redact(err.Error()), Duration: elapsed, Note: noteInterrupted})
			r.setFailed(id, ctx.Err(), elapsed)
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// attempt connects, asks a checking step whether its work is already
// done, and otherwise runs it, all within the step's timeout.
func (r *runner) attempt(ctx context.Context, t *task, step steps.Step, target *steps.Target) (steps.Outputs, bool, error) {
	timeout := t.step.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	outputs, found, err := func() (steps.Outputs, bool, error) {
		conn, err := r.opts.Connect(actx, t.host)
		if err != nil {
			return nil, false, err
		}
		target.Conn = conn
		if c, ok := step.(steps.Checker); ok && steps.Checks(step) {
			done, outputs, err := c.Done(actx, target)
			if err != nil {
				return nil, false, fmt.Errorf("check whether already done: %w", err)
			}
			if done {
				fmt.Fprintln(target.Log, "=== already done on this host (checked); not run")
				return outputs, true, nil
			}
		}
		outputs, err := step.Run(actx, target)
		return outputs, false, err
	}()
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = &TimeoutError{Limit: timeout, Err: err}
	}
	return outputs, found, err
}

func (r *runner) succeed(id TaskID, fp string, attempt int, elapsed time.Duration, outputs steps.Outputs, secretKeys []string, found bool, logPath string) error {
	clear, secret := splitSecrets(outputs, secretKeys)
	// An output that carries a known secret (a token passed on, or
	// wrapped in more text) is a secret too: sealed in the journal, hidden
	// in logs.
	for k, v := range clear {
		if r.secrets.Holds(v) {
			if secret == nil {
				secret = map[string]string{}
			}
			secret[k] = v
			delete(clear, k)
		}
	}
	var values []string
	for _, v := range secret {
		values = append(values, v)
	}
	if len(values) > 0 {
		r.secrets.Add(values...)
		redactFile(logPath, r.secrets)
	}
	rec := journal.Record{Event: journal.Done, Step: id.Step, Host: id.Host, Attempt: attempt, Fingerprint: fp,
		Outputs: clear, Secrets: secret, Duration: elapsed}
	if found {
		rec.Note = "already done (checked)"
	}
	if err := r.append(rec); err != nil {
		return r.failEarly(id, err)
	}
	r.finish(id, fp, outputs)
	status, ev := StatusDone, EventTaskDone
	if found {
		status, ev = StatusCached, EventTaskCached
	}
	r.mu.Lock()
	res := r.result(id)
	res.Status, res.Duration = status, elapsed
	r.mu.Unlock()
	r.emit(Event{Type: ev, Task: id.String(), Step: id.Step, Host: id.Host, Attempt: attempt, Duration: elapsed, Note: rec.Note, LogPath: logPath})
	return nil
}

// progressEvery is how often a task's upload progress becomes an event.
const progressEvery = 200 * time.Millisecond

// progress returns what a task's steps report uploads to: a transfer
// event when the upload starts, at most one per progressEvery after, and
// one at its end.
func (r *runner) progress(id TaskID) func(steps.Progress) {
	var mu sync.Mutex
	var last time.Time
	var name string
	return func(p steps.Progress) {
		now := r.now()
		mu.Lock()
		due := p.End || p.Name != name || now.Sub(last) >= progressEvery
		if due {
			last, name = now, p.Name
		}
		mu.Unlock()
		if !due {
			return
		}
		r.emit(Event{Time: now, Type: EventTransfer, Task: id.String(), Step: id.Step, Host: id.Host,
			Transfer: &Transfer{Name: p.Name, Dest: p.Dest, Bytes: p.Bytes, Total: p.Total, End: p.End, Sent: p.Sent}})
	}
}

func splitSecrets(outputs steps.Outputs, secretKeys []string) (clear, secret map[string]string) {
	isSecret := map[string]bool{}
	for _, k := range secretKeys {
		isSecret[k] = true
	}
	for k, v := range outputs {
		if isSecret[k] {
			if secret == nil {
				secret = map[string]string{}
			}
			secret[k] = v
		} else {
			if clear == nil {
				clear = map[string]string{}
			}
			clear[k] = v
		}
	}
	return clear, secret
}

// failEarly fails a task before or outside an attempt (a bad parameter, a
// journal write error): no retries.
func (r *runner) failEarly(id TaskID, err error) error {
	r.append(journal.Record{Event: journal.Failed, Step: id.Step, Host: id.Host, Error: r.secrets.Redact(err.Error())})
	r.setFailed(id, err, 0)
	r.emit(Event{Type: EventTaskFailed, Task: id.String(), Step: id.Step, Host: id.Host, Error: err.Error()})
	return err
}

func (r *runner) setStatus(id TaskID, s Status) {
	r.mu.Lock()
	r.result(id).Status = s
	r.mu.Unlock()
}

func (r *runner) setFailed(id TaskID, err error, d time.Duration) {
	r.mu.Lock()
	res := r.result(id)
	res.Status, res.Err, res.Duration = StatusFailed, redacted(r.secrets, err), d
	res.LogPath = r.opts.State.LogPath(id.Step, id.Host)
	r.mu.Unlock()
}

// append queues a record (see Durability above).
func (r *runner) append(rec journal.Record) error { return r.record(rec, false) }

// record writes rec; with wait it returns once rec is on disk.
func (r *runner) record(rec journal.Record, wait bool) error {
	rec.Time = r.now()
	rec.Run = r.runNo
	write := r.opts.State.Queue
	if wait {
		write = r.opts.State.Append
	}
	if err := write(rec); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

func backoff(base time.Duration, retry int) time.Duration {
	d := base
	for i := 1; i < retry && d < 30*time.Second; i++ {
		d *= 2
	}
	if d > 30*time.Second {
		d = 30 * time.Second
	}
	return d
}

// noteLostLog warns, once the task has ended, when its log could not be
// written in full: the outcome stays what the command did.
func (r *runner) noteLostLog(id TaskID, l *lazyLog, logPath string) {
	err := l.lostErr()
	if err == nil {
		return
	}
	why := err.Error()
	var pe *os.PathError
	if errors.As(err, &pe) {
		why = pe.Err.Error()
	}
	msg := fmt.Sprintf("log of %s is incomplete: %s", id, why)
	r.mu.Lock()
	res := r.result(id)
	res.Warnings = append(res.Warnings, msg)
	status := res.Status
	r.mu.Unlock()
	r.emit(Event{Type: EventTaskWarning, Task: id.String(), Step: id.Step, Host: id.Host, Error: why,
		Note: fmt.Sprintf("%s (the task %s: that is what its command did; the log %s lacks what came after)", msg, status, logPath), LogPath: logPath})
}

// lazyLog is a task's log file, created on the first write: a task that
// says nothing leaves no file. Before the first write of each attempt it
// writes the attempt's header. A write that fails (a full disk) does not
// fail the command that prints: the rest is dropped, and lostErr says so.
type lazyLog struct {
	mu     sync.Mutex
	path   string
	header string
	f      *os.File
	lost   error // the first failed write
}

func (l *lazyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return len(p), nil
	}
	if l.f == nil {
		err := os.MkdirAll(filepath.Dir(l.path), 0o700)
		if err == nil {
			l.f, err = os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		}
		if err != nil {
			l.lost = err
			return len(p), nil
		}
	}
	if l.header != "" {
		if _, err := l.f.WriteString(l.header); err != nil {
			l.lost = err
			return len(p), nil
		}
		l.header = ""
	}
	if _, err := l.f.Write(p); err != nil {
		l.lost = err
	}
	return len(p), nil
}

func (l *lazyLog) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

func (l *lazyLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// redactFile rewrites a task log with newly learned secrets hidden (a
// step's own secret outputs are known only once it has finished).
func redactFile(path string, r *redact.Set) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if s := r.Redact(string(b)); s != string(b) {
		tmp := path + ".tmp"
		err := os.WriteFile(tmp, []byte(s), 0o600)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			// No room for a copy (a full disk): the secret must not stay,
			// so the log is rewritten in place, over blocks it has.
			os.Remove(tmp)
			if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
				f.WriteAt([]byte(s), 0)
				f.Truncate(int64(len(s)))
				f.Close()
			}
		}
	}
}
