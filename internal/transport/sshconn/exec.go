package sshconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sealflow/sealflow/internal/transport"
)

// killGrace is how long a cancelled command may take to end after its
// TERM before its session is closed.
const killGrace = 5 * time.Second

// Exec runs cmd.Script with `sh -e` on the host. The command line sshd
// sees is a constant: script, environment and sudo password travel on
// stdin. Cancelling ctx sends TERM to the script's process group.
func (c *Conn) Exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	if err := ctx.Err(); err != nil {
		return transport.Result{}, fmt.Errorf("host %s: run command: %w", c.cfg.HostName, err)
	}
	// root needs no sudo: the wrapper then takes its fast path without
	// asking id.
	become := cmd.Become && c.cfg.User != "root"
	// Without input of its own the command gets the watchdog (see
	// wrapper.go): heartbeats on stdin until it ends.
	watch := cmd.Stdin == nil
	// A terminal carries no end of input: the caller's stdin goes ahead
	// with its size.
	var input []byte
	if c.cfg.TTY && cmd.Stdin != nil {
		b, err := io.ReadAll(cmd.Stdin)
		if err != nil {
			return transport.Result{}, fmt.Errorf("host %s: read the command's input: %w", c.cfg.HostName, err)
		}
		input = b
		if input == nil {
			input = []byte{}
		}
	}
	if watch && !c.cfg.TTY && !become && residentFits(cmd) {
		if r := c.resident(ctx); r != nil {
			if res, err := r.exec(ctx, cmd); err != errRefused {
				return res, err
			}
		}
	}
	header, err := c.header(cmd, become, watch, input)
	if err != nil {
		return transport.Result{}, err
	}
	s, release, err := c.session(ctx)
	if err != nil {
		return transport.Result{}, err
	}
	defer release()
	ended := make(chan struct{})
	defer close(ended)

	var mu sync.Mutex // the two streams may share a writer
	// On a terminal the wrapper's own failure comes on stdout: it is held
	// back until the marker, for the error.
	stdout := &markerWriter{w: lockedWriter(&mu, cmd.Stdout), hold: c.cfg.TTY}
	stderr := &headWriter{w: lockedWriter(&mu, cmd.Stderr), max: 4096}
	s.Stdout = stdout
	s.Stderr = stderr
	in := cmd.Stdin
	switch {
	case watch:
		in = &heartbeats{every: heartbeatEvery, ended: ended}
	case input != nil:
		in = bytes.NewReader(input)
	}
	s.Stdin = io.MultiReader(bytes.NewReader(header), in)

	// A host that stops answering must not hold the task past its
	// deadline: every request waits on ctx too.
	startErr := make(chan error, 1)
	go func() {
		if c.cfg.TTY {
			if err := s.RequestPty("dumb", 24, 80, rawTerminal); err != nil {
				startErr <- fmt.Errorf("ask for a terminal (tty: true): %w", err)
				return
			}
		}
		startErr <- s.Start(bootstrap)
	}()
	select {
	case err = <-startErr:
	case <-ctx.Done():
		return transport.Result{}, fmt.Errorf("host %s: start command: %w", c.cfg.HostName, ctx.Err())
	}
	if err != nil {
		if !c.Alive() {
			return transport.Result{}, c.dropped(false)
		}
		return transport.Result{}, fmt.Errorf("host %s: start command: %w", c.cfg.HostName, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		c.stop(stdout, done)
		release()
		return transport.Result{}, fmt.Errorf("host %s: command stopped: %w", c.cfg.HostName, ctx.Err())
	}

	code := 0
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.Signal() != "" {
			return transport.Result{}, fmt.Errorf("host %s: command killed by signal %s", c.cfg.HostName, ee.Signal())
		}
		code = ee.ExitStatus()
	case errors.As(err, &missing), errors.Is(err, io.EOF):
		if !c.Alive() {
			return transport.Result{}, c.dropped(true)
		}
		return transport.Result{}, fmt.Errorf("host %s: command ended without an exit status: %w", c.cfg.HostName, transport.ErrOutcomeUnknown)
	default:
		if !c.Alive() {
			return transport.Result{}, c.dropped(true)
		}
		return transport.Result{}, fmt.Errorf("host %s: run command: %w", c.cfg.HostName, err)
	}
	if _, ok := stdout.started(); !ok {
		msg := stderr.String()
		if msg == "" {
			msg = stdout.held()
		}
		msg = strings.TrimSpace(strings.TrimPrefix(msg, "sealflow: "))
		if msg == "" {
			msg = "exit status " + strconv.Itoa(code)
		}
		return transport.Result{}, fmt.Errorf("host %s: prepare command: %s", c.cfg.HostName, msg)
	}
	return transport.Result{ExitCode: code}, nil
}

// stop ends a running command: TERM to the script's process group (the
// wrapper's fast path) or to the wrapper, whose trap passes it to the
// script's process group (and KILLs that group after the grace period);
// after killGrace without an end, KILL to the group of the fast path.
// sshd does not pass "signal" requests to sessions of root (no privilege
// separation after login), so signals are sent by `kill` from a session
// of their own. A host that does not open that session within
// killOpenTimeout is hung: the connection is closed (the watchdog then
// ends the command when the host reads again) and stop returns.
func (c *Conn) stop(stdout *markerWriter, done <-chan error) {
	pid, ok := stdout.started()
	if !ok {
		// The script has not started: closing the session ends it.
		return
	}
	c.stopPID(pid, done)
}

// stopPID is stop for the process group -pid, or the wrapper pid; done
// yields (or is closed) when the command has ended.
func (c *Conn) stopPID(pid int, done <-chan error) {
	if !c.signal(pid, "TERM") {
		return
	}
	if c.waitEnd(done, killGrace) || pid > 0 {
		return
	}
	if c.signal(pid, "KILL") {
		c.waitEnd(done, killOpenTimeout)
	}
}

// waitEnd waits up to d for the command to end.
func (c *Conn) waitEnd(done <-chan error, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	case <-c.gone:
		return true
	}
}

// killOpenTimeout bounds opening the session that signals a command and
// running its kill.
const killOpenTimeout = 2 * time.Second

// signal sends sig to pid (a process group when negative) from a session
// of its own. It reports false when the host did not answer in time; the
// connection is then closed.
func (c *Conn) signal(pid int, sig string) bool {
	select {
	case c.killSem <- struct{}{}:
		defer func() { <-c.killSem }()
	case <-c.gone:
		return false
	}
	ran := make(chan bool, 1)
	var mu sync.Mutex
	var s *ssh.Session
	abandoned := false
	go func() {
		ns, err := c.client.NewSession()
		mu.Lock()
		if err != nil || abandoned {
			mu.Unlock()
			if ns != nil {
				ns.Close()
			}
			ran <- false
			return
		}
		s = ns
		mu.Unlock()
		_ = ns.Run("kill -" + sig + " -- " + strconv.Itoa(pid))
		ns.Close()
		ran <- true
	}()
	t := time.NewTimer(killOpenTimeout)
	defer t.Stop()
	select {
	case ok := <-ran:
		return ok
	case <-c.gone:
		return false
	case <-t.C:
		mu.Lock()
		abandoned = true
		if s != nil {
			s.Close()
		}
		mu.Unlock()
		c.end(fmt.Errorf("the host did not answer within %s when asked to stop a command", killOpenTimeout))
		return false
	}
}

// heartbeats is the watchdog's input: a line every every, until ended.
type heartbeats struct {
	every time.Duration
	ended <-chan struct{}
}

func (h *heartbeats) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	t := time.NewTimer(h.every)
	defer t.Stop()
	select {
	case <-h.ended:
		return 0, io.EOF
	case <-t.C:
		p[0] = '\n'
		return 1, nil
	}
}

// header encodes what the wrapper reads from stdin before the caller's
// input.
func (c *Conn) header(cmd transport.Command, become, watch bool, input []byte) ([]byte, error) {
	section, err := c.section(cmd)
	if err != nil {
		return nil, err
	}
	pw := ""
	if become && c.cfg.Password != nil {
		p, err := c.cfg.Password()
		if err != nil {
			return nil, fmt.Errorf("host %s: sudo password: %w", c.cfg.HostName, err)
		}
		if strings.ContainsAny(p, "\n\x00") {
			return nil, fmt.Errorf("host %s: the sudo password holds a newline or NUL byte, which sudo cannot read", c.cfg.HostName)
		}
		pw = p
	}
	flags := "0 0"
	switch {
	case become:
		flags = "1 1"
	case strings.Contains(cmd.Script, "SEALFLOW_TMP"), input != nil:
		flags = "0 1"
	}
	w := " 0"
	if watch {
		w = " 1"
	}
	// The fifth field: the size of the input sent after the password
	// line, which the wrapper stores as the command's stdin ("-": none,
	// stdin streams on).
	if input != nil {
		w += " " + strconv.Itoa(len(input))
	} else {
		w += " -"
	}
	var b bytes.Buffer
	if len(section) <= inlineMax {
		end, err := endLine(section)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", c.cfg.HostName, err)
		}
		b.WriteString(flags + " l" + w + "\n" + end + "\n" + section + end + "\n")
	} else {
		b.WriteString(flags + " b" + w + "\n" + strconv.Itoa(len(section)) + "\n" + section)
	}
	b.WriteString(pw + "\n")
	return b.Bytes(), nil
}

// section is what the wrapper evaluates: the environment's export lines
// and the script, ending in a newline.
func (c *Conn) section(cmd transport.Command) (string, error) {
	names := make([]string, 0, len(cmd.Env))
	for k := range cmd.Env {
		if !transport.ValidEnvName(k) {
			return "", fmt.Errorf("host %s: environment variable name %q: want letters, digits and '_', not starting with a digit", c.cfg.HostName, k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var env strings.Builder
	for _, k := range names {
		v := cmd.Env[k]
		if strings.IndexByte(v, 0) >= 0 {
			return "", fmt.Errorf("host %s: environment variable %s holds a NUL byte, which a shell cannot carry", c.cfg.HostName, k)
		}
		env.WriteString("export " + k + "=" + Quote(v) + "\n")
	}
	section := env.String() + cmd.Script
	if section != "" && !strings.HasSuffix(section, "\n") {
		section += "\n"
	}
	return section, nil
}

// endLine returns a line that ends the script section in mode l: one
// that section does not hold.
func endLine(section string) (string, error) {
	var r [16]byte
	for range 4 {
		if _, err := rand.Read(r[:]); err != nil {
			return "", fmt.Errorf("random end line: %w", err)
		}
		end := "sealflow-end-" + hex.EncodeToString(r[:])
		if !strings.Contains(section, end) {
			return end, nil
		}
	}
	return "", fmt.Errorf("no end line for the script section")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// lockedWriter serializes writes to w (nil: discard).
func lockedWriter(mu *sync.Mutex, w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return w.Write(p)
	})
}

// markerWriter takes the wrapper's start marker ("\x00sealflow-exec
// PID\x00") from the start of the stream and passes the rest on.
//
// With hold (a terminal, where the wrapper's failure comes on stdout)
// what comes before the marker is kept for held, up to holdMax bytes,
// instead of passed on.
type markerWriter struct {
	w    io.Writer
	mu   sync.Mutex
	head []byte // bytes held back while the marker may still be coming
	done bool   // the marker was read (or the stream does not start with it)
	pid  int
	hold bool
	pre  []byte // with hold: what came before the marker
}

const holdMax = 4096

func (m *markerWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(p)
	if !m.done {
		m.head = append(m.head, p...)
		p = nil
		if m.hold {
			// Bytes before the marker (or a prefix of one) are held.
			i := bytes.Index(m.head, []byte(execMarker))
			if i < 0 {
				i = len(m.head)
				for k := 1; k < len(execMarker) && k <= len(m.head); k++ {
					if bytes.HasPrefix([]byte(execMarker), m.head[len(m.head)-k:]) {
						i = len(m.head) - k
					}
				}
			}
			if i > 0 {
				m.pre = append(m.pre, m.head[:i]...)
				m.head = m.head[i:]
			}
			if len(m.pre) > holdMax {
				m.done, m.hold = true, false
				p, m.head = append(m.pre, m.head...), nil
				m.pre = m.pre[:holdMax]
				if _, err := m.w.Write(p); err != nil {
					return 0, err
				}
				return n, nil
			}
			if len(m.head) == 0 {
				return n, nil
			}
		}
		pid, rest, ok, more := parseMarker(m.head)
		if more {
			return n, nil
		}
		m.done = true
		if ok {
			m.pid = pid
			p = rest
		} else {
			p = m.head
		}
		m.head = nil
	}
	if len(p) > 0 {
		if _, err := m.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// parseMarker reads the marker at the start of b. more says b is a
// prefix of a marker; ok says b starts with one, followed by rest.
func parseMarker(b []byte) (pid int, rest []byte, ok, more bool) {
	const prefix = execMarker
	if len(b) < len(prefix) {
		return 0, nil, false, bytes.HasPrefix([]byte(prefix), b)
	}
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return 0, nil, false, false
	}
	digits := b[len(prefix):]
	sign := 1
	if len(digits) > 0 && digits[0] == '-' {
		sign, digits = -1, digits[1:]
	}
	for i, c := range digits {
		switch {
		case c == 0 && i > 0:
			pid, err := strconv.Atoi(string(digits[:i]))
			return sign * pid, digits[i+1:], err == nil && pid > 0, false
		case c < '0' || c > '9' || i >= 10:
			return 0, nil, false, false
		}
	}
	return 0, nil, false, len(digits) <= 10
}

// held returns what came before the marker with hold.
func (m *markerWriter) held() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hold && !m.done {
		return string(append(m.pre, m.head...))
	}
	return string(m.pre)
}

// rawTerminal are the modes of the terminal asked for with Config.TTY:
// input as sent (no echo of the header and its password, no line
// editing or length limit, no signals or flow control from its bytes),
// output as written (no \n to \r\n).
var rawTerminal = ssh.TerminalModes{
	ssh.ECHO: 0, ssh.ECHONL: 0, ssh.ICANON: 0, ssh.ISIG: 0, ssh.IEXTEN: 0,
	ssh.ICRNL: 0, ssh.INLCR: 0, ssh.IGNCR: 0, ssh.IXON: 0, ssh.IXOFF: 0, ssh.ISTRIP: 0,
	ssh.OPOST: 0, ssh.ONLCR: 0, ssh.OCRNL: 0,
	ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400,
}

// started returns the marker's PID: negative for a process group (the
// fast path), positive for the wrapper alone.
func (m *markerWriter) started() (pid int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pid, m.pid != 0
}

// headWriter passes writes on and keeps the first max bytes.
type headWriter struct {
	w   io.Writer
	max int
	mu  sync.Mutex
	buf bytes.Buffer
}

func (h *headWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	if room := h.max - h.buf.Len(); room > 0 {
		h.buf.Write(p[:min(room, len(p))])
	}
	h.mu.Unlock()
	return h.w.Write(p)
}

func (h *headWriter) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}
