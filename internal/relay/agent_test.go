package relay

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testAgent is an agent run in this process, spoken to as the control
// machine would.
type testAgent struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan string
	exit  chan int
	dest  string
	port  int
	have  int64
}

func startAgent(t *testing.T, data []byte, token string, opts Options) *testAgent {
	t.Helper()
	m, err := NewManifest(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	or, ow := io.Pipe()
	a := &testAgent{t: t, in: pw, lines: make(chan string, 1000), exit: make(chan int, 1),
		dest: filepath.Join(t.TempDir(), "d", "file")}
	go func() { a.exit <- Run(pr, ow, opts); ow.Close() }()
	go func() {
		sc := bufio.NewScanner(or)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	a.send("token " + token)
	a.send("dest " + strconv.Quote(a.dest))
	a.send("mode 640")
	a.send("listen 127.0.0.1 0")
	a.send("manifest " + m.Line())
	a.send("go")
	a.have, _ = strconv.ParseInt(a.expect("have "), 10, 64)
	a.port, _ = strconv.Atoi(a.expect("listen "))
	t.Cleanup(func() { pw.Close() })
	return a
}

func (a *testAgent) send(line string) {
	if _, err := io.WriteString(a.in, line+"\n"); err != nil {
		a.t.Fatalf("send %q: %v", line, err)
	}
}

// expect waits for a line starting with prefix and returns the rest.
func (a *testAgent) expect(prefix string) string {
	a.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				a.t.Fatalf("the agent ended before %q", prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest
			}
			if strings.HasPrefix(l, "fail") {
				a.t.Fatalf("the agent failed waiting for %q: %s", prefix, l)
			}
		case <-timeout:
			a.t.Fatalf("no %q from the agent", prefix)
		}
	}
}

func (a *testAgent) feed(data []byte, from int64) {
	for off := from; off < int64(len(data)); off += 300 << 10 {
		end := min(off+300<<10, int64(len(data)))
		a.send(fmt.Sprintf("data %d", end-off))
		a.in.Write(data[off:end])
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func newToken() string { return hex.EncodeToString(randomBytes(32)) }

func TestAgentChainOfTwo(t *testing.T) {
	data := randomBytes(5<<20 + 777)
	tok := newToken()
	a := startAgent(t, data, tok, Options{})
	b := startAgent(t, data, tok, Options{})
	a.send("from -")
	if want := a.expect("want "); want != "0" {
		t.Fatalf("want %s", want)
	}
	b.send(fmt.Sprintf("from 127.0.0.1:%d", a.port))
	go a.feed(data, 0)
	a.expect("done ")
	b.expect("done ")
	for _, x := range []*testAgent{a, b} {
		got, err := os.ReadFile(x.dest)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("the file differs (%v)", err)
		}
		if st, _ := os.Stat(x.dest); st.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want 0640", st.Mode().Perm())
		}
	}
	a.send("quit")
	if code := <-a.exit; code != 0 {
		t.Errorf("exit %d after quit", code)
	}
	b.in.Close()
	if code := <-b.exit; code != 0 {
		t.Errorf("exit %d at the end of input", code)
	}
}

// A peer without the run's token is refused; one that sends bytes the
// manifest does not vouch for is dropped, and nothing of them is kept.
func TestAgentRefusesStrangersAndBadBytes(t *testing.T) {
	data := randomBytes(3 << 20)
	a := startAgent(t, data, newToken(), Options{})
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", a.port))
	if err != nil {
		t.Fatal(err)
	}
	hello := make([]byte, 36)
	io.ReadFull(c, hello)
	c.Write(make([]byte, 40)) // not the HMAC of the nonce
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Error("a client without the token got bytes")
	}
	c.Close()
	a.expect("note refused a connection")

	// A server that knows the token but sends other bytes.
	tok := newToken()
	b := startAgent(t, data, tok, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(append([]byte(magic), make([]byte, 32)...))
		io.ReadFull(c, make([]byte, 40))
		bad := randomBytes(MinChunk)
		hdr := make([]byte, 4)
		binary.BigEndian.PutUint32(hdr, uint32(len(bad)))
		c.Write(append(hdr, bad...))
		io.Copy(io.Discard, c)
	}()
	b.send("from " + ln.Addr().String())
	if why := b.expect("lost "); !strings.Contains(why, "does not match the manifest") {
		t.Errorf("lost %s", why)
	}
	partial := filepath.Join(filepath.Dir(b.dest), ".file.sealflow-partial")
	if st, err := os.Stat(partial); err != nil || st.Size() != 0 {
		t.Errorf("bad bytes kept: %v, %v", st, err)
	}
}

// An agent started over a partial file keeps its verified chunks and
// drops the rest.
func TestAgentKeepsVerifiedChunks(t *testing.T) {
	data := randomBytes(4<<20 + 5)
	tok := newToken()
	dir := t.TempDir()
	dest := filepath.Join(dir, "d", "file")
	os.MkdirAll(filepath.Dir(dest), 0o755)
	partial := filepath.Join(dir, "d", ".file.sealflow-partial")
	// Two good chunks, then half a chunk of garbage.
	os.WriteFile(partial, append(append([]byte{}, data[:2<<20]...), randomBytes(1<<19)...), 0o600)
	m, _ := NewManifest(bytes.NewReader(data), int64(len(data)))
	pr, pw := io.Pipe()
	var out bytes.Buffer
	done := make(chan int)
	go func() { done <- Run(pr, &out, Options{}) }()
	fmt.Fprintf(pw, "token %s\ndest %s\nmode 644\nlisten 127.0.0.1 0\nmanifest %s\ngo\nfrom -\n", tok, strconv.Quote(dest), m.Line())
	time.Sleep(200 * time.Millisecond)
	a := &testAgent{t: t, in: pw}
	a.feed(data, 2<<20)
	pw.Close()
	<-done
	if !strings.Contains(out.String(), "have 2097152\n") || !strings.Contains(out.String(), "want 2097152\n") || !strings.Contains(out.String(), "done ") {
		t.Errorf("agent said:\n%s", out.String())
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Error("the file differs")
	}
}

// The watchdog: no word from the control machine ends the agent and
// closes its port.
func TestAgentWatchdog(t *testing.T) {
	a := startAgent(t, randomBytes(100), newToken(), Options{Watchdog: 300 * time.Millisecond})
	select {
	case code := <-a.exit:
		if code == 0 {
			t.Error("exit 0 after the watchdog")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not end without its control machine")
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", a.port)); err == nil {
		c.Close()
		t.Error("the agent's port still accepts connections")
	}
}

func TestManifestLine(t *testing.T) {
	for _, size := range []int{0, 1, MinChunk, MinChunk + 1, 3*MinChunk - 1} {
		data := randomBytes(size)
		m, err := NewManifest(bytes.NewReader(data), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseManifest(m.Line())
		if err != nil || back.Size != m.Size || back.Whole != m.Whole || len(back.Sums) != len(m.Sums) {
			t.Errorf("size %d: %v", size, err)
		}
	}
	if _, err := NewManifest(bytes.NewReader(make([]byte, 10)), 20); err == nil {
		t.Error("a short file made a manifest")
	}
	for _, bad := range []string{"", "1 2 3", "-1 1048576 " + strings.Repeat("0", 64) + " -", "10 1048576 " + strings.Repeat("0", 64) + " -"} {
		if _, err := parseManifest(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if c := ChunkSize(10 << 30); c != 4<<20 {
		t.Errorf("chunk of a 10 GiB file: %d", c)
	}
}
