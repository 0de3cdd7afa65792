package kubepkg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sealflow/sealflow/internal/transport"
)

const (
	// maxChecksumFile bounds a checksum file.
	maxChecksumFile = 1 << 20
	// stallTimeout ends an attempt that received nothing for that long.
	stallTimeout = 60 * time.Second
	// defaultRetries is how many times a failed download is tried again.
	defaultRetries = 4
)

// Progress hears about transfers. Implementations must be safe for use
// from several goroutines.
type Progress interface {
	// Start: a transfer of name begins (total -1 when unknown).
	Start(name string, total int64)
	// Add: n more bytes of name arrived.
	Add(name string, n int64)
	// Done: name finished (err nil) or failed.
	Done(name string, err error)
}

type noProgress struct{}

func (noProgress) Start(string, int64) {}
func (noProgress) Add(string, int64)   {}
func (noProgress) Done(string, error)  {}

// Fetcher downloads files over HTTP with retries and resume.
type Fetcher struct {
	Client   *http.Client
	Mirrors  Mirrors
	Retries  int                             // default defaultRetries
	Backoff  func(attempt int) time.Duration // default 1s, 2s, 4s ... at most 30s
	Progress Progress
}

// HTTPError is a response that is not a success.
type HTTPError struct {
	URL    string
	Status string
	Code   int
}

func (e *HTTPError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

// ChecksumError is a file whose sha256 is not the expected one.
type ChecksumError struct {
	Name, URL, Want, Got, From string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s (%s): sha256 %s, expected %s (%s): the download is corrupt or the checksum is wrong",
		e.Name, e.URL, e.Got, e.Want, e.From)
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
	}}
}

func (f *Fetcher) progress() Progress {
	if f.Progress != nil {
		return f.Progress
	}
	return noProgress{}
}

func (f *Fetcher) backoff(attempt int) time.Duration {
	if f.Backoff != nil {
		return f.Backoff(attempt)
	}
	d := time.Second << attempt
	if d > 30*time.Second || d <= 0 {
		d = 30 * time.Second
	}
	return d
}

// retry runs try until it succeeds, fails for good, or the retries (with
// backoff between them) are spent.
func (f *Fetcher) retry(ctx context.Context, try func() error) error {
	retries := f.Retries
	if retries == 0 {
		retries = defaultRetries
	}
	for attempt := 0; ; attempt++ {
		err := try()
		if err == nil || attempt >= retries || !retriable(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.backoff(attempt)):
		}
	}
}

// retriable says whether another attempt may help.
func retriable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Code == http.StatusTooManyRequests || he.Code >= 500
	}
	return !errors.Is(err, context.Canceled)
}

// Download fetches url (through the mirrors) into dst, resuming from
// dst.part when an earlier attempt or run left one, and returns the
// file's sha256. dst appears only once complete.
func (f *Fetcher) Download(ctx context.Context, name, url, dst string) (string, error) {
	src := f.Mirrors.URL(url)
	part := dst + ".part"
	p := f.progress()
	p.Start(name, -1)
	err := f.retry(ctx, func() error { return f.attempt(ctx, name, src, part) })
	if err != nil {
		p.Done(name, err)
		return "", err
	}
	sum, err := transport.FileSum(part)
	if err == nil {
		err = os.Rename(part, dst)
	}
	p.Done(name, err)
	return sum, err
}

// attempt makes one request, appending to part from its current size.
func (f *Fetcher) attempt(ctx context.Context, name, src, part string) error {
	out, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	have, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", src, err)
	}
	defer resp.Body.Close()
	total := resp.ContentLength
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return fmt.Errorf("GET %s: the server resumed at an unexpected place (%q)", src, resp.Header.Get("Content-Range"))
		}
		total = size
		f.progress().Add(name, have)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		// The part is complete or longer than the file: start over.
		if err := out.Truncate(0); err != nil {
			return err
		}
		return fmt.Errorf("GET %s: the partial download does not fit: starting over", src)
	case resp.StatusCode == http.StatusOK:
		if err := out.Truncate(0); err != nil {
			return err
		}
		if _, err := out.Seek(0, io.SeekStart); err != nil {
			return err
		}
	default:
		return &HTTPError{URL: src, Status: resp.Status, Code: resp.StatusCode}
	}
	if total > 0 {
		f.progress().Start(name, total)
	}
	// A stalled transfer is cut after stallTimeout without a byte.
	var stalled atomic.Bool
	timer := time.AfterFunc(stallTimeout, func() { stalled.Store(true); cancel() })
	defer timer.Stop()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			timer.Reset(stallTimeout)
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %s: %w", part, err)
			}
			f.progress().Add(name, int64(n))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if stalled.Load() {
				return fmt.Errorf("GET %s: no data for %s", src, stallTimeout)
			}
			return fmt.Errorf("GET %s: %w", src, rerr)
		}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if st, err := out.Stat(); err == nil && total > 0 && st.Size() != total {
		return fmt.Errorf("GET %s: got %d of %d bytes", src, st.Size(), total)
	}
	return out.Close()
}

// contentRange parses "bytes START-END/SIZE".
func contentRange(h string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(s, 10, 64)
	size, err2 := strconv.ParseInt(sz, 10, 64)
	if sz == "*" {
		size, err2 = -1, nil
	}
	return start, size, err1 == nil && err2 == nil
}

// Checksum fetches a checksum file and finds the sum of the file named by
// fileURL in it: a lone "HEX", or "HEX  NAME" / "HEX *NAME" lines.
func (f *Fetcher) Checksum(ctx context.Context, checksumURL, fileURL string) (string, error) {
	src := f.Mirrors.URL(checksumURL)
	var body []byte
	err := f.retry(ctx, func() (err error) { body, err = f.get(ctx, src); return err })
	if err != nil {
		var he *HTTPError
		if errors.As(err, &he) && he.Code == http.StatusNotFound {
			return "", fmt.Errorf("checksum file %s not found (%s): pin sha256 for the file in the manifest, or set checksum_url", checksumURL, he.Status)
		}
		return "", fmt.Errorf("checksum file %s: %w", checksumURL, err)
	}
	sum, err := findSum(body, path.Base(fileURL))
	if err != nil {
		return "", fmt.Errorf("checksum file %s: %w", checksumURL, err)
	}
	return sum, nil
}

func (f *Fetcher) get(ctx context.Context, src string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{URL: src, Status: resp.Status, Code: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxChecksumFile+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", src, err)
	}
	if len(body) > maxChecksumFile {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", src, maxChecksumFile)
	}
	return body, nil
}

// findSum picks the sum for base out of a checksum file.
func findSum(body []byte, base string) (string, error) {
	var lone []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		sum := strings.ToLower(fields[0])
		if !sha256RE.MatchString(sum) {
			continue
		}
		if len(fields) == 1 {
			lone = append(lone, sum)
			continue
		}
		n := strings.TrimPrefix(fields[len(fields)-1], "*")
		if path.Base(n) == base {
			return sum, nil
		}
	}
	if len(lone) == 1 {
		return lone[0], nil
	}
	return "", fmt.Errorf("no sha256 for %s in it", base)
}
