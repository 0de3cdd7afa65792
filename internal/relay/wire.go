package relay

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

const magic = "SFR1"

func mac(token, nonce []byte) []byte {
	h := hmac.New(sha256.New, token)
	h.Write(nonce)
	return h.Sum(nil)
}

// serve listens for the next hosts and serves each what it has verified.
func (a *agent) serve() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.listen)
	if err != nil {
		return nil, err
	}
	a.say("listen", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serveOne(c)
		}
	}()
	return ln, nil
}

func (a *agent) serveOne(c net.Conn) {
	defer c.Close()
	peer := c.RemoteAddr().String()
	go func() {
		<-a.done
		c.Close()
	}()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	c.SetDeadline(time.Now().Add(dialTimeout * 2))
	if _, err := c.Write(append([]byte(magic), nonce...)); err != nil {
		return
	}
	var req [32 + 8]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	if !hmac.Equal(req[:32], mac(a.token, nonce)) {
		a.say("note", "refused a connection from "+peer+": it does not know the run's token")
		return
	}
	off := int64(binary.BigEndian.Uint64(req[32:]))
	if off < 0 || off > a.m.Size {
		return
	}
	c.SetDeadline(time.Time{})
	start, sent := off, int64(0)
	defer func() { a.say("served", peer, strconv.FormatInt(start, 10), strconv.FormatInt(sent, 10)) }()
	buf := make([]byte, 4+frameSize)
	keepalive := time.NewTimer(keepaliveEvery)
	defer keepalive.Stop()
	for off < a.m.Size {
		have, changed := a.have()
		if have <= off {
			select {
			case <-changed:
				continue
			case <-keepalive.C:
				keepalive.Reset(keepaliveEvery)
				c.SetWriteDeadline(time.Now().Add(writeTimeout))
				if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
					return
				}
				continue
			case <-a.done:
				return
			}
		}
		n := min(have-off, frameSize)
		if _, err := a.file.ReadAt(buf[4:4+n], off); err != nil {
			return
		}
		binary.BigEndian.PutUint32(buf, uint32(n))
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Write(buf[:4+n]); err != nil {
			return
		}
		off += n
		sent += n
		keepalive.Reset(keepaliveEvery)
	}
	// All sent: wait (bounded) for the client to close, so that its last
	// bytes are not cut by a reset.
	c.SetReadDeadline(time.Now().Add(writeTimeout))
	io.Copy(io.Discard, c)
}

// pull fetches from addr as source gen, from byte off, in a goroutine.
func (a *agent) pull(gen int, addr string, off int64) {
	stop := make(chan struct{})
	a.mu.Lock()
	a.stop = func() { close(stop) }
	a.mu.Unlock()
	go func() {
		kind, err := a.fetch(gen, addr, off, stop)
		select {
		case <-stop:
			return // given up by the control machine: it knows
		default:
		}
		if err != nil {
			a.say("lost", kind, err.Error())
		}
	}()
}

func (a *agent) fetch(gen int, addr string, off int64, stop chan struct{}) (string, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "connect", err
	}
	defer c.Close()
	go func() {
		select {
		case <-stop:
		case <-a.done:
		}
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(dialTimeout * 2))
	hello := make([]byte, len(magic)+32)
	if _, err := io.ReadFull(c, hello); err != nil {
		return "connect", errors.New("no greeting from " + addr + ": " + err.Error())
	}
	if string(hello[:len(magic)]) != magic {
		return "connect", errors.New(addr + " is not a relay agent")
	}
	req := append(mac(a.token, hello[len(magic):]), make([]byte, 8)...)
	binary.BigEndian.PutUint64(req[32:], uint64(off))
	if _, err := c.Write(req); err != nil {
		return "connect", err
	}
	buf := make([]byte, maxFrame)
	for {
		have, _ := a.have()
		if have >= a.m.Size {
			return "", nil
		}
		c.SetReadDeadline(time.Now().Add(a.opts.Stall))
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return "stream", streamErr(addr, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxFrame {
			return "stream", errors.New(addr + " sent a frame too large")
		}
		if n == 0 {
			continue
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return "stream", streamErr(addr, err)
		}
		if err := a.write(gen, buf[:n]); err != nil {
			if errors.Is(err, errBadChunk) {
				return "stream", errors.New(addr + " sent a chunk that does not match the manifest")
			}
			return "fatal", err
		}
	}
}

func streamErr(addr string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New(addr + " sent nothing for a while: stalled")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New(addr + " closed the connection")
	}
	return err
}
