package relay

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// maxLine bounds a line of the control machine (the manifest's is
	// the longest: 64 bytes a chunk, at most maxChunks chunks).
	maxLine = 64*maxChunks + 4096
	// maxFrame bounds a data frame, on stdin and between hosts.
	maxFrame = 1 << 20
	// frameSize is what a server sends per frame.
	frameSize = 256 << 10
	// keepaliveEvery: a server with nothing new says so this often, so
	// that its client tells a host that waits from one that is gone.
	keepaliveEvery = 2 * time.Second
	// stallAfter: a source that sent nothing (not even a keepalive) for
	// this long is taken for dead.
	stallAfter = 10 * time.Second
	// dialTimeout bounds a connection to another host.
	dialTimeout = 5 * time.Second
	// watchdogAfter: no line from the control machine for this long
	// means it is gone.
	watchdogAfter = 30 * time.Second
	// writeTimeout bounds one frame's write to a client.
	writeTimeout = 30 * time.Second
)

// Options change the agent's timings (tests); zero values are defaults.
type Options struct {
	Watchdog time.Duration
	Stall    time.Duration
}

type agent struct {
	opts   Options
	outMu  sync.Mutex
	out    *bufio.Writer
	token  []byte
	dest   string
	mode   os.FileMode
	listen string
	m      *Manifest

	file    *os.File
	partial string

	mu       sync.Mutex
	verified int64
	changed  chan struct{} // closed and replaced when verified grows
	gen      int           // the current source; writes of another are dropped
	cur      []byte        // the chunk being received
	whole    hash.Hash
	complete bool
	stop     func() // ends the current puller
	done     chan struct{}
}

// Run is the agent: it reads the control machine's lines on in, answers
// on out and returns the process's exit status.
func Run(in io.Reader, out io.Writer, opts Options) int {
	if opts.Watchdog <= 0 {
		opts.Watchdog = watchdogAfter
	}
	if opts.Stall <= 0 {
		opts.Stall = stallAfter
	}
	a := &agent{opts: opts, out: bufio.NewWriter(out), changed: make(chan struct{}), done: make(chan struct{})}
	err := a.run(bufio.NewReaderSize(in, 64<<10))
	a.mu.Lock()
	if a.stop != nil {
		a.stop()
	}
	a.mu.Unlock()
	close(a.done)
	if a.file != nil {
		a.file.Close()
	}
	if err != nil {
		a.say("fail", err.Error())
		return 1
	}
	return 0
}

func (a *agent) say(words ...string) {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	line := strings.Join(words, " ")
	a.out.WriteString(strings.ReplaceAll(line, "\n", " "))
	a.out.WriteByte('\n')
	a.out.Flush()
}

// readLine reads one line of at most maxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		part, err := r.ReadSlice('\n')
		b = append(b, part...)
		if len(b) > maxLine {
			return "", errors.New("a line of the control machine is too long")
		}
		if err == nil {
			return strings.TrimSuffix(string(b), "\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(b) > 0 && errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

func (a *agent) run(in *bufio.Reader) error {
	// The watchdog: a line resets it.
	alive := make(chan struct{}, 1)
	lines := make(chan error, 1)
	go func() {
		t := time.NewTimer(a.opts.Watchdog)
		defer t.Stop()
		for {
			select {
			case <-alive:
				t.Reset(a.opts.Watchdog)
			case <-t.C:
				lines <- errors.New("no word from the control machine for " + a.opts.Watchdog.String() + ": it is gone")
				return
			case <-a.done:
				return
			}
		}
	}()
	type cmd struct {
		line string
		data []byte
		err  error
	}
	cmds := make(chan cmd)
	go func() {
		for {
			line, err := readLine(in)
			if err != nil {
				cmds <- cmd{err: err}
				return
			}
			var data []byte
			if n, ok := strings.CutPrefix(line, "data "); ok {
				size, err := strconv.Atoi(n)
				if err != nil || size < 0 || size > maxFrame {
					cmds <- cmd{err: errors.New("bad data frame")}
					return
				}
				data = make([]byte, size)
				if _, err := io.ReadFull(in, data); err != nil {
					cmds <- cmd{err: io.ErrUnexpectedEOF}
					return
				}
			}
			select {
			case cmds <- cmd{line: line, data: data}:
			case <-a.done:
				return
			}
		}
	}()
	configured := false
	var ln net.Listener
	defer func() {
		if ln != nil {
			ln.Close()
		}
	}()
	stdinGen := -1
	for {
		var c cmd
		select {
		case c = <-cmds:
		case err := <-lines:
			return err
		}
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				return nil
			}
			return c.err
		}
		select {
		case alive <- struct{}{}:
		default:
		}
		word, rest, _ := strings.Cut(c.line, " ")
		if !configured {
			if word != "go" {
				if err := a.configure(word, rest); err != nil {
					return err
				}
				continue
			}
			if err := a.open(); err != nil {
				return err
			}
			var err error
			if ln, err = a.serve(); err != nil {
				return err
			}
			configured = true
			continue
		}
		switch word {
		case "ping":
		case "quit":
			return nil
		case "from":
			a.mu.Lock()
			if a.stop != nil {
				a.stop()
				a.stop = nil
			}
			a.gen++
			a.cur = a.cur[:0]
			gen, from := a.gen, a.verified
			a.mu.Unlock()
			if rest == "-" {
				stdinGen = gen
				a.say("want", strconv.FormatInt(from, 10))
				continue
			}
			stdinGen = -1
			a.pull(gen, rest, from)
		case "data":
			if stdinGen < 0 {
				continue // frames of a source given up
			}
			if err := a.write(stdinGen, c.data); err != nil {
				if errors.Is(err, errBadChunk) {
					return errors.New("the control machine sent a chunk that does not match its manifest: the file changed while being sent")
				}
				return err
			}
		default:
			return errors.New("unknown command " + strconv.Quote(word))
		}
	}
}

func (a *agent) configure(word, rest string) error {
	switch word {
	case "token":
		b, err := hex.DecodeString(rest)
		if err != nil || len(b) < 16 {
			return errors.New("bad token")
		}
		a.token = b
	case "dest":
		d, err := strconv.Unquote(rest)
		if err != nil || !filepath.IsAbs(d) {
			return errors.New("dest: not an absolute path")
		}
		a.dest = filepath.Clean(d)
	case "mode":
		m, err := strconv.ParseUint(rest, 8, 32)
		if err != nil || m > 0o7777 {
			return errors.New("bad mode")
		}
		a.mode = os.FileMode(m) & os.ModePerm
	case "listen":
		host, port, ok := strings.Cut(rest, " ")
		if !ok {
			return errors.New("listen: want HOST PORT")
		}
		a.listen = net.JoinHostPort(host, port)
	case "manifest":
		m, err := parseManifest(rest)
		if err != nil {
			return err
		}
		a.m = m
	default:
		return errors.New("unknown setting " + strconv.Quote(word))
	}
	return nil
}

// open opens the partial file and keeps its longest verified prefix.
func (a *agent) open() error {
	if a.token == nil || a.dest == "" || a.m == nil || a.listen == "" {
		return errors.New("configuration incomplete: token, dest, listen and manifest are needed")
	}
	dir := filepath.Dir(a.dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	a.partial = filepath.Join(dir, "."+filepath.Base(a.dest)+".sealflow-partial")
	f, err := os.OpenFile(a.partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	a.file = f
	a.whole = sha256.New()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, a.m.Chunk)
	var off int64
	for i := 0; off < a.m.Size && off+a.m.chunkLen(off) <= st.Size(); i++ {
		n := a.m.chunkLen(off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			break
		}
		if sha256.Sum256(buf[:n]) != a.m.Sums[i] {
			break
		}
		a.whole.Write(buf[:n])
		off += n
	}
	if err := f.Truncate(off); err != nil {
		return err
	}
	a.verified = off
	a.say("have", strconv.FormatInt(off, 10))
	if off == a.m.Size {
		return a.finish()
	}
	return nil
}

var errBadChunk = errors.New("a chunk does not match the manifest")

// write takes bytes of source gen, in order from the verified offset.
func (a *agent) write(gen int, p []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen || a.complete {
		return nil
	}
	for len(p) > 0 {
		want := a.m.chunkLen(a.verified) - int64(len(a.cur))
		if want <= 0 {
			return errors.New("more bytes than the file has")
		}
		n := min(int64(len(p)), want)
		a.cur = append(a.cur, p[:n]...)
		p = p[n:]
		if int64(len(a.cur)) < a.m.chunkLen(a.verified) {
			continue
		}
		i := a.verified / a.m.Chunk
		if sha256.Sum256(a.cur) != a.m.Sums[i] {
			a.cur = a.cur[:0]
			return errBadChunk
		}
		if _, err := a.file.WriteAt(a.cur, a.verified); err != nil {
			return err
		}
		a.whole.Write(a.cur)
		a.verified += int64(len(a.cur))
		a.cur = a.cur[:0]
		close(a.changed)
		a.changed = make(chan struct{})
		a.say("got", strconv.FormatInt(a.verified, 10))
		if a.verified == a.m.Size {
			if err := a.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish checks the whole sum, syncs and renames; the caller holds mu (or
// is open, before anything else runs).
func (a *agent) finish() error {
	if [32]byte(a.whole.Sum(nil)) != a.m.Whole {
		return errors.New("the whole file's sha256 does not match the manifest")
	}
	if err := a.file.Chmod(a.mode); err != nil {
		return err
	}
	if err := a.file.Sync(); err != nil {
		return err
	}
	if err := os.Rename(a.partial, a.dest); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(a.dest)); err == nil {
		d.Sync()
		d.Close()
	}
	a.complete = true
	a.say("done", a.m.WholeHex())
	return nil
}

// have returns the verified offset and a channel closed when it grows.
func (a *agent) have() (int64, chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.verified, a.changed
}
