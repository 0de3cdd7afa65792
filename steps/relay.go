package steps

// The control machine's side of distribute's relay mode (the agent's is
// internal/relay). The tasks of the hosts that take one file at once form
// a session: each starts an agent on its host, and the session chains
// them: the control machine feeds the first, each next host pulls from the
// one before it. A host whose source fails is fed by the nearest working
// host before it (or the control machine); a host that cannot reach the
// others gets the file by push.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sealflow/sealflow/internal/relay"
	"github.com/sealflow/sealflow/internal/relaybin"
	"github.com/sealflow/sealflow/internal/transport"
)

const (
	// relayGather is how long a new session waits at most for the hosts
	// that start with it (all of the step's hosts end it sooner), to chain
	// them by what they already have.
	relayGather = 3 * time.Second
	// relayPing is how often the control machine tells agents it lives.
	relayPing = 5 * time.Second
	// relayStart bounds an agent's start (its partial file checked).
	relayStart = 2 * time.Minute
	// relayRejoin is how many times a host whose agent ended is taken
	// back, at the chain's tail, before its task fails.
	relayRejoin = 2
	// relayQuit bounds the wait for agents to end once a session is over.
	relayQuit = 10 * time.Second
	// feedFrame is the size of the control machine's data frames.
	feedFrame = 256 << 10
)

// AgentSource gives the relay agent for a host architecture.
type AgentSource interface {
	For(arch string) (*relaybin.Agent, error)
}

// relayHub holds a run's relay sessions, one per file being relayed.
type relayHub struct {
	agents AgentSource
	// agentDir, when set, is where agents are put on every host (tests);
	// else /var/lib/sealflow/bin, or ~/.cache/sealflow/bin for a user
	// who is not root and does not become root.
	agentDir string
	mu       sync.Mutex
	live     map[string]*relaySession
	mans     fileCache[*relay.Manifest]
	hosts    map[string]*sync.Mutex // agent installs, by host address
}

// lockHost serializes agent installs on one host.
func (h *relayHub) lockHost(addr string) func() {
	h.mu.Lock()
	l := h.hosts[addr]
	if l == nil {
		l = &sync.Mutex{}
		h.hosts[addr] = l
	}
	h.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func newRelayHub(agents AgentSource) *relayHub {
	return &relayHub{agents: agents, live: map[string]*relaySession{}, hosts: map[string]*sync.Mutex{}}
}

// manifest computes f's manifest once per run.
func (h *relayHub) manifest(f *os.File, st fs.FileInfo) (*relay.Manifest, error) {
	return h.mans.get(f, st, func() (*relay.Manifest, error) {
		return relay.NewManifest(io.NewSectionReader(f, 0, st.Size()), st.Size())
	})
}

// join returns the live session for the file with manifest m, a new one
// when there is none, and counts the caller in.
func (h *relayHub) join(src string, m *relay.Manifest) (*relaySession, error) {
	key := m.WholeHex()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.live[key]
	if s == nil {
		tok := make([]byte, 32)
		rand.Read(tok)
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		s = &relaySession{hub: h, key: key, m: m, src: f, token: hex.EncodeToString(tok), ctx: ctx, cancel: cancel,
			created: time.Now()}
		h.live[key] = s
	}
	s.active++
	return s, nil
}

// relaySession chains the hosts that take one file.
type relaySession struct {
	hub     *relayHub
	key     string
	m       *relay.Manifest
	src     *os.File
	token   string
	ctx     context.Context // the agents' lives
	cancel  func()
	created time.Time

	// under hub.mu:
	active int

	mu       sync.Mutex
	chain    []*member // placed members, in chain order
	pending  []*member // members of the first moments, not yet placed
	gathered bool      // the first members are placed
	gather   *time.Timer
	sent     int64 // bytes the control machine sent
	ended    bool
}

// leave counts the caller out; the last one ends the session: every
// agent told to quit, waited for (bounded), then killed.
func (s *relaySession) leave() {
	h := s.hub
	h.mu.Lock()
	s.active--
	last := s.active == 0
	if last {
		delete(h.live, s.key)
	}
	h.mu.Unlock()
	if !last {
		return
	}
	s.mu.Lock()
	s.ended = true
	members := append([]*member(nil), s.chain...)
	s.mu.Unlock()
	for _, m := range members {
		m.quit()
	}
	deadline := time.After(relayQuit)
	for _, m := range members {
		select {
		case <-m.exited:
		case <-deadline:
		}
	}
	s.cancel()
	for _, m := range members {
		<-m.exited
	}
	s.src.Close()
}

// member is one host's agent in a session.
type member struct {
	s    *relaySession
	name string
	addr string // where other hosts reach its agent

	logMu sync.Mutex
	logw  io.Writer // the task's log; nil once the task has ended

	in     *io.PipeWriter
	inMu   sync.Mutex
	events chan string   // the agent's lines
	exited chan struct{} // closed when its command has ended
	err    error         // how it ended (after exited)

	// under s.mu:
	port      int
	have      int64
	source    *member // nil: the control machine
	suspect   bool    // not to be used as a source
	refusedBy map[*member]bool
	failedTo  map[*member]bool
	done      bool
	feedStop  chan struct{}
}

// Write takes the agent's stderr into the task's log while it has one.
func (m *member) Write(p []byte) (int, error) {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if m.logw != nil {
		m.logw.Write(p)
	}
	return len(p), nil
}

func (m *member) log(format string, args ...any) {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if m.logw != nil {
		fmt.Fprintf(m.logw, format, args...)
	}
}

// detach ends m's ties to its task: its log is no longer written, and
// what the agent says from now on is read and dropped (an agent whose
// lines nobody reads would stop serving).
func (m *member) detach() {
	m.logMu.Lock()
	m.logw = nil
	m.logMu.Unlock()
	go func() {
		for {
			select {
			case <-m.events:
			case <-m.exited:
				return
			}
		}
	}()
}

func (m *member) send(line string) error {
	m.inMu.Lock()
	defer m.inMu.Unlock()
	_, err := io.WriteString(m.in, line+"\n")
	return err
}

func (m *member) quit() {
	go func() {
		m.send("quit")
		m.in.Close()
	}()
}

// startAgent starts the agent at agentPath on t's host and gives it its
// configuration.
func (s *relaySession) startAgent(t *Target, agentPath, dest string, mode fs.FileMode, port int) (*member, error) {
	pr, pw := io.Pipe()
	m := &member{s: s, name: t.Host.Name, addr: t.Host.Address, logw: t.Log, in: pw,
		events: make(chan string, 64), exited: make(chan struct{}), refusedBy: map[*member]bool{}, failedTo: map[*member]bool{}}
	lines := &lineWriter{out: m.events, done: s.ctx.Done()}
	go func() {
		res, err := t.Conn.Exec(s.ctx, transport.Command{
			Script: `exec "$SF_RELAY"`,
			Env:    mergeEnv(t.Env, map[string]string{"SF_RELAY": agentPath}),
			Stdin:  pr,
			Stdout: lines,
			Stderr: m,
			Become: t.Become,
		})
		if err == nil && res.ExitCode != 0 {
			err = &transport.ExitError{Code: res.ExitCode}
		}
		pr.CloseWithError(io.ErrClosedPipe)
		m.err = err
		close(m.exited)
	}()
	go func() {
		tick := time.NewTicker(relayPing)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if m.send("ping") != nil {
					return
				}
			case <-m.exited:
				return
			}
		}
	}()
	host := t.Host.Address
	if strings.HasPrefix(host, "[") {
		host = strings.Trim(host, "[]")
	}
	cfg := []string{
		"token " + s.token,
		"dest " + strconv.Quote(dest),
		"mode " + strconv.FormatUint(uint64(mode.Perm()), 8),
		"listen " + host + " " + strconv.Itoa(port),
		"manifest " + s.m.Line(),
		"go",
	}
	go func() {
		for _, l := range cfg {
			if m.send(l) != nil {
				return
			}
		}
	}()
	// The agent checks what it has, then listens.
	timeout := time.NewTimer(relayStart)
	defer timeout.Stop()
	gotHave, gotPort := false, false
	for !gotHave || !gotPort {
		select {
		case line := <-m.events:
			word, rest, _ := strings.Cut(line, " ")
			switch word {
			case "have":
				n, err := strconv.ParseInt(rest, 10, 64)
				if err != nil {
					return nil, m.stopWith(fmt.Errorf("relay agent: bad line %q", line))
				}
				m.have, gotHave = n, true
			case "listen":
				p, err := strconv.Atoi(rest)
				if err != nil {
					return nil, m.stopWith(fmt.Errorf("relay agent: bad line %q", line))
				}
				m.port, gotPort = p, true
			case "done":
				m.done = true
			case "fail":
				return nil, m.stopWith(fmt.Errorf("relay agent: %s", rest))
			case "note":
				m.log("relay: %s\n", rest)
			}
		case <-m.exited:
			return nil, fmt.Errorf("relay agent ended before it listened: %v", m.err)
		case <-timeout.C:
			return nil, m.stopWith(fmt.Errorf("relay agent did not start within %s", relayStart))
		}
	}
	if m.have > 0 {
		m.log("relay: %d bytes verified here from an earlier run: kept\n", m.have)
	}
	return m, nil
}

func (m *member) stopWith(err error) error {
	m.quit()
	return err
}

// place puts m in the chain. Members that come in the session's first
// moments (until expected have come, or relayGather) are chained together
// by what they have, most first, so that nobody waits for a source that
// has less; later ones go to the tail.
func (s *relaySession) place(m *member, expected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gathered && time.Since(s.created) < relayGather {
		s.pending = append(s.pending, m)
		if len(s.pending) >= expected {
			s.placePending()
		} else if s.gather == nil {
			s.gather = time.AfterFunc(time.Until(s.created.Add(relayGather)), func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.placePending()
			})
		}
		return
	}
	s.placePending()
	s.chain = append(s.chain, m)
	if !m.done {
		s.route(m, s.upstreamOf(m))
	}
}

// placePending chains the members of the first moments; s.mu is held.
func (s *relaySession) placePending() {
	if s.gathered {
		return
	}
	s.gathered = true
	if s.gather != nil {
		s.gather.Stop()
	}
	sort.SliceStable(s.pending, func(i, j int) bool { return s.pending[i].have > s.pending[j].have })
	for _, m := range s.pending {
		s.chain = append(s.chain, m)
		if !m.done && !s.ended {
			s.route(m, s.upstreamOf(m))
		}
	}
	s.pending = nil
}

// upstreamOf returns the nearest member before m in the chain that can
// serve, nil for the control machine.
func (s *relaySession) upstreamOf(m *member) *member {
	i := 0
	for i < len(s.chain) && s.chain[i] != m {
		i++
	}
	for j := i - 1; j >= 0; j-- {
		c := s.chain[j]
		if !c.suspect && !m.failedTo[c] && c.port > 0 {
			select {
			case <-c.exited:
				continue
			default:
			}
			return c
		}
	}
	return nil
}

// route gives m its source (nil: the control machine); s.mu is held.
func (s *relaySession) route(m, src *member) {
	if m.feedStop != nil {
		close(m.feedStop)
		m.feedStop = nil
	}
	m.source = src
	if src == nil {
		m.log("relay: fed by the control machine\n")
		go m.send("from -")
		return
	}
	m.log("relay: pulls from %s (%s)\n", src.name, joinHost(src.addr, src.port))
	go m.send("from " + joinHost(src.addr, src.port))
}

func joinHost(host string, port int) string {
	host = strings.Trim(host, "[]")
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// feed sends the file from off to m, the control machine being its source.
func (s *relaySession) feed(m *member, off int64) {
	s.mu.Lock()
	if m.source != nil || s.ended {
		s.mu.Unlock()
		return
	}
	if m.feedStop != nil {
		close(m.feedStop)
	}
	stop := make(chan struct{})
	m.feedStop = stop
	s.mu.Unlock()
	go func() {
		buf := make([]byte, feedFrame)
		for off < s.m.Size {
			select {
			case <-stop:
				return
			case <-s.ctx.Done():
				return
			default:
			}
			n, err := s.src.ReadAt(buf[:min(int64(len(buf)), s.m.Size-off)], off)
			if n == 0 && err != nil {
				m.log("relay: read the file: %v\n", err)
				return
			}
			m.inMu.Lock()
			_, err = fmt.Fprintf(m.in, "data %d\n", n)
			if err == nil {
				_, err = m.in.Write(buf[:n])
			}
			m.inMu.Unlock()
			if err != nil {
				return
			}
			off += int64(n)
			s.mu.Lock()
			s.sent += int64(n)
			s.mu.Unlock()
		}
	}()
}

// lost handles m's report that its source failed; it returns true when m
// should get the file by push instead. s.mu is not held.
func (s *relaySession) lost(m *member, kind, why string) (push bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := m.source
	name := "the control machine"
	if src != nil {
		name = src.name
	}
	m.log("relay: lost %s: %s\n", name, why)
	if src == nil {
		return false // the agent reports no loss of stdin
	}
	switch kind {
	case "connect":
		m.failedTo[src] = true
		src.refusedBy[m] = true
		if len(src.refusedBy) >= 2 {
			src.suspect = true
		}
		if len(m.failedTo) >= 2 {
			m.log("relay: %s cannot reach the other hosts (%s): it gets the file by push\n", m.name, why)
			return true
		}
	default:
		src.suspect = true
	}
	s.route(m, s.upstreamOf(m))
	return false
}

// lineWriter passes a command's output on as lines.
type lineWriter struct {
	out  chan<- string
	done <-chan struct{}
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		select {
		case w.out <- line:
		case <-w.done:
			return len(p), nil
		}
	}
	if len(w.buf) > 1<<16 {
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// relayResult is how one host's part of a session ended.
type relayResult struct {
	push bool // get the file by push
	err  error
}

// await follows m until its file is complete (or m is to be pushed).
func (s *relaySession) await(ctx context.Context, t *Target, m *member, dest string) relayResult {
	p := Progress{Name: path.Base(dest), Dest: dest, Total: s.m.Size}
	for {
		select {
		case <-ctx.Done():
			return relayResult{err: ctx.Err()}
		case <-m.exited:
			s.mu.Lock()
			done := m.done
			s.mu.Unlock()
			if done {
				return relayResult{}
			}
			return relayResult{err: fmt.Errorf("relay agent ended: %v", m.err)}
		case line := <-m.events:
			word, rest, _ := strings.Cut(line, " ")
			switch word {
			case "want":
				off, err := strconv.ParseInt(rest, 10, 64)
				if err != nil {
					return relayResult{err: fmt.Errorf("relay agent: bad line %q", line)}
				}
				s.feed(m, off)
			case "got":
				n, _ := strconv.ParseInt(rest, 10, 64)
				if t.Progress != nil {
					p.Bytes = n
					t.Progress(p)
				}
			case "done":
				s.mu.Lock()
				m.done = true
				s.mu.Unlock()
				if t.Progress != nil {
					p.Bytes, p.End, p.Sent = s.m.Size, true, s.m.Size-m.have
					t.Progress(p)
				}
				return relayResult{}
			case "lost":
				kind, why, _ := strings.Cut(rest, " ")
				if kind == "fatal" {
					return relayResult{err: errors.New("relay agent: " + why)}
				}
				if s.lost(m, kind, why) {
					return relayResult{push: true}
				}
			case "served":
				f := strings.Fields(rest)
				if len(f) == 3 {
					m.log("relay: served %s from byte %s: %s bytes\n", s.nameOf(f[0]), f[1], f[2])
				}
			case "note":
				m.log("relay: %s\n", rest)
			case "fail":
				return relayResult{err: errors.New("relay agent: " + rest)}
			}
		}
	}
}

// nameOf names the member at addr (HOST:PORT of a connection from it),
// or returns addr.
func (s *relaySession) nameOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.chain {
		if strings.Trim(m.addr, "[]") == host {
			return m.name
		}
	}
	return addr
}

func (s *relaySession) sentBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// drop takes m out of the chain for good (its agent told to quit): the
// members it fed find another source when their stream ends.
func (s *relaySession) drop(m *member) {
	s.mu.Lock()
	m.suspect = true
	if m.feedStop != nil {
		close(m.feedStop)
		m.feedStop = nil
	}
	s.mu.Unlock()
	m.quit()
}

// relayProbe says what the host is: its architecture, user and home.
const relayProbe = `uname -m; id -u; printf '%s\n' "$HOME"`

// relayUnpack makes the agent $SF_AGENT from $SF_AGENT.gz, unless it is
// there with sha256 $SF_SUM; it prints "ok" when the agent is in place and
// "send" when the .gz is needed.
const relayUnpack = `ready() { [ -x "$SF_AGENT" ] && s=$(sha256sum <"$SF_AGENT") && [ "${s%% *}" = "$SF_SUM" ]; }
if ready; then echo ok; exit 0; fi
[ -f "$SF_AGENT.gz" ] || { echo send; exit 0; }
command -v gzip >/dev/null 2>&1 || { echo "gzip is not installed on this host" >&2; exit 3; }
tmp="$SF_AGENT.$$.tmp"
if gzip -dc <"$SF_AGENT.gz" >"$tmp" && s=$(sha256sum <"$tmp") && [ "${s%% *}" = "$SF_SUM" ]; then
	chmod 0755 "$tmp"
	mv -f -- "$tmp" "$SF_AGENT"
	rm -f -- "$SF_AGENT.gz"
	echo ok
	exit 0
fi
rm -f -- "$tmp" "$SF_AGENT.gz"
echo send
`

// ensureAgent puts the relay agent on t's host, content-addressed (sent
// once per host and agent version), and returns its path.
func (h *relayHub) ensureAgent(ctx context.Context, t *Target) (string, error) {
	out, err := output(ctx, t, "probe the host for the relay agent", relayProbe, nil)
	if err != nil {
		return "", err
	}
	f := strings.Split(strings.TrimSpace(out), "\n")
	if len(f) < 3 {
		return "", fmt.Errorf("probe the host for the relay agent: it printed %q", out)
	}
	arch := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[strings.TrimSpace(f[0])]
	if arch == "" {
		return "", fmt.Errorf("no relay agent for this host's architecture (%s)", strings.TrimSpace(f[0]))
	}
	ag, err := h.agents.For(arch)
	if err != nil {
		return "", err
	}
	dir := "/var/lib/sealflow/bin"
	if strings.TrimSpace(f[1]) != "0" && !t.Become {
		home := strings.TrimSpace(f[2])
		if !path.IsAbs(home) {
			return "", fmt.Errorf("the user's home directory %q is not an absolute path", home)
		}
		dir = path.Join(home, ".cache/sealflow/bin")
	}
	if h.agentDir != "" {
		dir = h.agentDir
	}
	agent := path.Join(dir, "sealflow-relay-"+ag.Sum[:16])
	// Two files distributed to a host at once install its agent once.
	unlock := h.lockHost(t.Host.Address)
	defer unlock()
	env := map[string]string{"SF_AGENT": agent, "SF_SUM": ag.Sum}
	for range 2 {
		out, err := output(ctx, t, "install the relay agent", relayUnpack, env)
		if err != nil {
			return "", err
		}
		switch strings.TrimSpace(out) {
		case "ok":
			return agent, nil
		case "send":
			logf(t, "relay: sending the agent (%d bytes, %d compressed) to %s\n", ag.Size, len(ag.Gz), agent)
			if err := t.Conn.Upload(ctx, bytes.NewReader(ag.Gz), agent+".gz", 0o600, ag.GzSum); err != nil {
				return "", fmt.Errorf("send the relay agent: %w", err)
			}
		default:
			return "", fmt.Errorf("install the relay agent: it printed %q", out)
		}
	}
	return "", errors.New("install the relay agent: it is not in place after sending it")
}
