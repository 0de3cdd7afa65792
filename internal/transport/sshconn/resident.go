package sshconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sealflow/sealflow/internal/transport"
)

// The resident runner: one session per connection whose shell runs the
// connection's short commands one after another, each in a subshell of
// its own, so that a command costs the host a fork or two instead of a
// session (sshd's fork, the login shell, the wrapper's sh).
//
// Exec opens it with the wrapper in mode r, the header's second line a
// random token. The runner checks that it leads its process group (sshd
// starts sessions with setsid), prints "\x00sealflow-runner -PGID\x00" on
// stdout and reads from stdin:
//
//	\n                       a heartbeat
//	t\n<end line>\n<environment and script><end line>\n   a command
//	q\n                      the end, when no command runs
//
// A command runs in the background as
//
//	{ (eval "unset the runner's names; set -e
//	SCRIPT"); status=$?; end marker on stderr; end marker on stdout; } </dev/null &
//
// with the end marker "\x00sealflow-end-TOKEN STATUS\x00": the client
// passes each stream on to the command's writers up to its marker, and
// sends the next command only when both have come. The runner goes on
// reading meanwhile, so heartbeats keep flowing: the client sends one
// every heartbeatEvery for as long as the runner lives. The first starts
// the runner's timer, a subshell of it that sleeps watchdogTick seconds at
// a time (one `sleep`); the runner passes each heartbeat on to it with a
// signal, which interrupts its wait (the timer starts with USR1 ignored,
// so that a heartbeat passed on before it set its trap does not kill it).
// A sleep without a heartbeat means the link is dead; the end of input,
// that the session is gone. The timer then sends TERM to the runner's
// process group (the runner and any command), and KILL killGraceRemote
// seconds later; at the end of input the runner does that itself when a
// command is running, and otherwise just exits. A client done with an idle
// runner (its connection closing) sends "q": the runner waits for its last
// command's process, which has sent its end markers, and exits, where at
// the end of input that process, still exiting, would count as a command
// running. Nothing signals the runner, so that no signal interrupts its
// reads: shells differ in what such a read returns (dash the part of the
// line read so far, bash as sh and busybox nothing of it, or all of it),
// and a request line would be lost.
//
// Only commands the runner runs as they would run alone take it
// (residentFits): no stdin of their own (they read /dev/null), no
// terminal, no sudo as a non-root user, no $SEALFLOW_TMP, no `$$` (the runner's PID, not the
// command's), and no `&`: a command's background processes would share
// the runner's process group, and be stopped with it when a later command
// is cancelled. The rest, and any command while the runner is busy, take
// a session of their own. Cancelling a command on the runner ends the
// runner (TERM, then KILL, to its process group); the next command starts
// a new one.

// residentShell holds the runner's functions; the wrapper calls _sfrun
// in mode r (the token in _sfn).
const residentShell = `_sfgone() {
	trap '' TERM HUP INT
	[ -z "$_sfk" ] || kill "$_sfk" 2>/dev/null
	jobs >/dev/null 2>&1
	if [ -n "$_sfj" ] && kill -0 "$_sfj" 2>/dev/null; then
		kill -TERM "-$$" 2>/dev/null
		sleep ` + killGraceRemote + `
		kill -KILL "-$$" 2>/dev/null
	fi
	exit 0
}
_sftimer() {
	trap '_sfb=1' USR1
	trap '[ -n "$_sfz" ] && kill "$_sfz" 2>/dev/null; exit 0' TERM
	_sfb=1 _sfz=
	while [ -n "$_sfb" ]; do
		_sfb=
		sleep ` + watchdogTick + ` &
		_sfz=$!
		until wait "$_sfz"; do kill -0 "$_sfz" 2>/dev/null || break; done
	done
	trap '' TERM HUP INT
	kill -TERM "-$$" 2>/dev/null
	sleep ` + killGraceRemote + `
	kill -KILL "-$$" 2>/dev/null
	exit 0
}
_sfrun() {
	kill -0 "-$$" 2>/dev/null || _sff "runner: not the leader of its process group"
	_sft=$_sfn _sfj= _sfk=
	printf '\000sealflow-runner -%s\000' "$$"
	while IFS= read -r _sfl; do
		case $_sfl in
		'')
			if [ -n "$_sfk" ]; then
				kill -USR1 "$_sfk" 2>/dev/null
			else
				trap '' USR1
				_sftimer </dev/null >/dev/null 2>&1 &
				_sfk=$!
				trap - USR1
			fi
			continue;;
		t) ;;
		q)
			[ -z "$_sfj" ] || wait "$_sfj" 2>/dev/null
			[ -z "$_sfk" ] || kill "$_sfk" 2>/dev/null
			exit 0;;
		*) break;;
		esac
		IFS= read -r _sfn || break
		_sfs=
		while IFS= read -r _sfl && [ "$_sfl" != "$_sfn" ]; do
			_sfs=$_sfs$_sfl'
'
		done
		[ "$_sfl" = "$_sfn" ] || break
		[ -z "$_sfj" ] || wait "$_sfj" 2>/dev/null
		{ (eval "unset -v _sfb _sfd _sfg _sfI _sfj _sfk _sfl _sfm _sfn _sfp _sfs _sft _sfw _sfW _sfz; unset -f _sff _sftmp _sfwatch _sflost _sfgone _sftimer _sfrun; set -e
$_sfs"); _sfr=$?; printf '\000sealflow-end-%s %s\000' "$_sft" "$_sfr" >&2; printf '\000sealflow-end-%s %s\000' "$_sft" "$_sfr"; } </dev/null &
		_sfj=$! _sfs=
	done
	_sfgone
}`

// residentFits reports whether script runs on the runner as it would in
// a session of its own (see above).
func residentFits(cmd transport.Command) bool {
	script, size := cmd.Script, len(cmd.Script)
	for k, v := range cmd.Env {
		size += len(k) + len(v) + 16 // quoted: see section
	}
	if size > inlineMax/2 {
		return false
	}
	if strings.Contains(script, "SEALFLOW_TMP") || strings.Contains(script, "$$") || strings.Contains(script, "${$}") {
		return false
	}
	rest := strings.NewReplacer("&&", "", ">&", "", "<&", "").Replace(script)
	return !strings.Contains(rest, "&")
}

// resident is a connection's runner.
type resident struct {
	c       *Conn
	s       *ssh.Session
	stdin   io.WriteCloser
	busy    sync.Mutex
	wmu     sync.Mutex // stdin
	out     *demux
	errs    *demux
	release func()        // the session's slot
	ready   chan struct{} // closed once pgid or refused is known
	pgid    int           // negative: the runner's process group
	refused bool          // the runner ended before it was ready
	dead    chan error    // closed when the runner's session has ended
	stopped bool          // under c.resMu: told to end, not to be used again
}

// errRefused says the runner ended before it read a command: the command
// takes a session.
var errRefused = errors.New("the host's shell did not start a runner")

// resident returns the connection's runner, locked for one command, or
// nil when the command is to take a session: the host refused a runner,
// or it is busy.
func (c *Conn) resident(ctx context.Context) *resident {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	if c.resOff {
		return nil
	}
	r := c.res
	if r != nil && (r.stopped || r.ended()) {
		c.res, r = nil, nil
	}
	if r == nil {
		r = c.startResident(ctx)
		if r == nil {
			return nil
		}
		c.res = r
	}
	if !r.busy.TryLock() {
		return nil
	}
	return r
}

// prohibited reports whether err is the host refusing a session
// (OpenSSH past its MaxSessions says "open failed").
func prohibited(err error) bool {
	var oce *ssh.OpenChannelError
	return errors.As(err, &oce)
}

// yieldResident ends an idle runner so that its session slot on the host
// goes to a command that needs a session, and keeps this connection from
// starting another: a host with so few sessions has none to spare for
// one. It reports whether it ended one.
func (c *Conn) yieldResident() bool {
	if !c.resMu.TryLock() {
		return false // a runner is starting: its own session is the one refused
	}
	r := c.res
	if r == nil || !r.busy.TryLock() {
		c.resMu.Unlock()
		return false
	}
	c.res, c.resOff = nil, true
	c.resMu.Unlock()
	r.quit()
	t := time.NewTimer(killOpenTimeout)
	defer t.Stop()
	select {
	case <-r.dead:
	case <-t.C:
	}
	return true
}

// startResident starts a runner (c.resMu is held): its session and
// header. Commands may be sent at once; it says it is ready (or ends)
// in its own time.
func (c *Conn) startResident(ctx context.Context) *resident {
	// Only in a free slot: the caller holds c.resMu, which other
	// commands wait on without their deadlines.
	select {
	case c.sem <- struct{}{}:
	default:
		return nil
	}
	s, release, err := c.openSession(ctx)
	if err != nil {
		return nil
	}
	stdin, err1 := s.StdinPipe()
	stdout, err2 := s.StdoutPipe()
	stderr, err3 := s.StderrPipe()
	if errors.Join(err1, err2, err3) != nil {
		s.Close()
		release()
		return nil
	}
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	marker := []byte("\x00sealflow-end-" + token + " ")
	r := &resident{c: c, s: s, stdin: stdin, release: release, ready: make(chan struct{}), dead: make(chan error),
		out: newDemux(marker), errs: newDemux(marker)}
	// The header goes first: live writes it, then lets commands follow.
	r.wmu.Lock()
	go r.live(stdout, stderr, "0 0 r 0 -\n"+token+"\n")
	return r
}

// live starts the runner and runs its streams and heartbeats until its
// session ends.
func (r *resident) live(stdout, stderr io.Reader, header string) {
	defer close(r.dead)
	defer r.release()
	defer r.s.Close()
	err := r.s.Start(bootstrap)
	if err == nil {
		_, err = io.WriteString(r.stdin, header)
	}
	r.wmu.Unlock()
	if err != nil {
		r.refused = r.c.Alive()
		close(r.ready)
		return
	}
	r.pgid = readReady(stdout)
	if r.pgid >= 0 {
		r.refused = r.c.Alive()
		close(r.ready)
		return
	}
	close(r.ready)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.out.run(stdout) }()
	go func() { defer wg.Done(); r.errs.run(stderr) }()
	streams := make(chan struct{})
	go func() {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if r.write("\n") != nil {
					return
				}
			case <-streams:
				return
			}
		}
	}()
	wg.Wait()
	close(streams)
	r.s.Wait()
}

// readReady reads up to the runner's ready marker and returns its
// process group (negative), or 0 when the stream ended first. What the
// host's login shell printed before it is dropped.
func readReady(stdout io.Reader) int {
	const prefix = "\x00sealflow-runner "
	var seen []byte
	b := make([]byte, 1)
	for len(seen) < 64<<10 {
		if _, err := io.ReadFull(stdout, b); err != nil {
			return 0
		}
		seen = append(seen, b[0])
		if b[0] != 0 {
			continue
		}
		i := bytes.LastIndex(seen, []byte(prefix))
		if i < 0 || len(seen) == i+len(prefix) {
			continue
		}
		pgid, err := strconv.Atoi(string(seen[i+len(prefix) : len(seen)-1]))
		if err != nil || pgid >= 0 {
			return 0
		}
		return pgid
	}
	return 0
}

// quit ends the runner, which the caller has locked (idle): "q", then
// the session's close.
func (r *resident) quit() {
	r.write("q\n")
	r.s.Close()
}

// quitResident ends the connection's runner when it is idle.
func (c *Conn) quitResident() {
	if !c.resMu.TryLock() {
		return // a runner is starting: the end of its input ends it
	}
	r := c.res
	c.res = nil
	c.resMu.Unlock()
	if r != nil && r.busy.TryLock() {
		r.quit()
	}
}

func (r *resident) write(s string) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := io.WriteString(r.stdin, s)
	return err
}

func (r *resident) ended() bool {
	select {
	case <-r.dead:
		return true
	default:
		return false
	}
}

// exec runs cmd on the runner, which the caller has locked. errRefused
// says cmd did not start: it is to take a session.
func (r *resident) exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	defer r.busy.Unlock()
	c := r.c
	section, err := c.section(cmd)
	if err != nil {
		return transport.Result{}, err
	}
	end, err := endLine(section)
	if err != nil {
		return transport.Result{}, fmt.Errorf("host %s: %w", c.cfg.HostName, err)
	}
	var mu sync.Mutex
	r.out.set(lockedWriter(&mu, cmd.Stdout))
	r.errs.set(lockedWriter(&mu, cmd.Stderr))
	defer r.out.set(nil)
	defer r.errs.set(nil)
	go r.write("t\n" + end + "\n" + section + end + "\n")
	code, got := 0, 0
	for got < 2 {
		select {
		case code = <-r.out.ends:
			got++
		case <-r.errs.ends:
			got++
		case <-r.dead:
			c.resMu.Lock()
			if r.refused {
				c.resOff = true
			}
			c.resMu.Unlock()
			switch {
			case r.refused:
				return transport.Result{}, errRefused
			case !c.Alive():
				return transport.Result{}, c.dropped(true)
			}
			return transport.Result{}, fmt.Errorf("host %s: command ended without an exit status (its shell ended): %w", c.cfg.HostName, transport.ErrOutcomeUnknown)
		case <-ctx.Done():
			// The command shares the runner's process group: both end.
			c.resMu.Lock()
			r.stopped = true
			c.resMu.Unlock()
			select {
			case <-r.ready:
				if !r.refused {
					c.stopPID(r.pgid, r.dead)
				}
			default:
				// Not started yet: the end of the session stops it.
			}
			r.s.Close()
			return transport.Result{}, fmt.Errorf("host %s: command stopped: %w", c.cfg.HostName, ctx.Err())
		}
	}
	if err := errors.Join(r.out.werr(), r.errs.werr()); err != nil {
		return transport.Result{}, fmt.Errorf("host %s: run command: %w", c.cfg.HostName, err)
	}
	return transport.Result{ExitCode: code}, nil
}

// demux passes one of the runner's streams on to the running command's
// writer, up to each end marker, whose status it sends on ends.
type demux struct {
	marker []byte
	ends   chan int
	mu     sync.Mutex
	w      io.Writer // nil between commands: their bytes are dropped
	err    error     // the first write error of the current command
}

func newDemux(marker []byte) *demux {
	return &demux{marker: marker, ends: make(chan int, 2)}
}

func (d *demux) set(w io.Writer) {
	d.mu.Lock()
	d.w, d.err = w, nil
	d.mu.Unlock()
}

func (d *demux) werr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *demux) pass(p []byte) {
	if len(p) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w != nil && d.err == nil {
		_, d.err = d.w.Write(p)
	}
}

// run reads the stream to its end. Its buffer holds one read and what
// may be the start of a marker.
func (d *demux) run(r io.Reader) {
	const chunk = 32 << 10
	buf := make([]byte, 0, chunk+len(d.marker)+8)
	for {
		n, err := r.Read(buf[len(buf) : len(buf)+min(chunk, cap(buf)-len(buf))])
		buf = buf[:len(buf)+n]
		held := d.scan(buf)
		if err != nil {
			d.pass(buf[held:]) // the stream ended: no marker is coming
			return
		}
		buf = buf[:copy(buf, buf[held:])]
	}
}

// scan passes p on up to the markers it holds, sending their statuses,
// and returns where what may be the start of one begins.
func (d *demux) scan(p []byte) int {
	start := 0
	for {
		i := bytes.Index(p[start:], d.marker)
		if i < 0 {
			keep := 0
			for k := min(len(d.marker)-1, len(p)-start); k > 0; k-- {
				if bytes.HasPrefix(d.marker, p[len(p)-k:]) {
					keep = k
					break
				}
			}
			d.pass(p[start : len(p)-keep])
			return len(p) - keep
		}
		i += start
		d.pass(p[start:i])
		digits := p[i+len(d.marker):]
		j := bytes.IndexByte(digits, 0)
		if j < 0 && len(digits) <= 4 {
			return i // the rest of the marker is still to come
		}
		code, err := 0, errors.New("no status")
		if j > 0 {
			code, err = strconv.Atoi(string(digits[:j]))
		}
		if err != nil {
			// Not a marker after all: the runner writes none such.
			d.pass(p[i : i+1])
			start = i + 1
			continue
		}
		d.ends <- code
		start = i + len(d.marker) + j + 1
	}
}
