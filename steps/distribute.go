package steps

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/sealflow/sealflow/internal/relaybin"
)

// distributeKind puts a (large) file on every host: from the control
// machine (src) by relay (the control machine sends it once, each host
// passes it on to the next: relay.go) or by push (over SFTP to every
// host; resumable, skipped when the host has it), or downloaded by each
// host from a URL with curl or wget. How many pushes send data at once,
// over all hosts, is the run's --uploads (default 8).
func distributeKind() *Kind { return newDistributeKind(&relaybin.Agents{}) }

// newDistributeKind is distribute with the relay agents of agents.
func newDistributeKind(agents AgentSource) *Kind {
	sums := &FileSums{}
	hub := newRelayHub(agents)
	return &Kind{
		Name: "distribute",
		Doc: "put a file on the host: from src by relay (sent once, passed on host to host) or push (resumable, " +
			"skipped when the host has it), or downloaded from url; the run's --uploads bounds how many pushes send at once",
		LocalFiles: []string{"src"},
		Sums:       sums,
		Params: []Param{
			{Name: "src", Type: String, Doc: "the local file to send (give src or url)"},
			{Name: "url", Type: String, Doc: "a URL each host downloads with curl, else wget (give src or url)"},
			{Name: "dest", Type: String, Required: true, Doc: "the absolute path on the host"},
			{Name: "sha256", Type: String, Doc: "the file's hex sha256 (computed once per run for src when not given)"},
			{Name: "mode", Type: String, Doc: "how src travels: relay (the control machine sends it once; each host passes it to the next " +
				"over TCP), push (the control machine sends it to every host), or auto (default: relay for 3 hosts or more)"},
			{Name: "relay_port", Type: Int, Doc: "the TCP port the hosts' relay agents listen on (default: any free port)"},
		},
		Rerunnable: true,
		New:        func(p Params) (Step, error) { return newDistribute(p, sums, hub) },
	}
}

type distribute struct {
	src, url, dest, sum string
	mode                string
	port                int
	sums                *FileSums
	hub                 *relayHub
}

var hexSum = regexp.MustCompile(`^[0-9a-f]{64}$`)

func newDistribute(p Params, sums *FileSums, hub *relayHub) (Step, error) {
	s := &distribute{sums: sums, hub: hub, mode: "auto"}
	s.src, _ = p["src"].(string)
	s.url, _ = p["url"].(string)
	s.dest, _ = p["dest"].(string)
	s.sum, _ = p["sha256"].(string)
	s.sum = strings.ToLower(strings.TrimSpace(s.sum))
	if m, ok := p["mode"].(string); ok && m != "" {
		s.mode = m
	}
	s.port, _ = p["relay_port"].(int)
	switch {
	case s.src == "" && s.url == "":
		return nil, fmt.Errorf("src, url: give one: the local file to upload or the URL the host downloads")
	case s.src != "" && s.url != "":
		return nil, fmt.Errorf("src, url: give only one of them")
	}
	switch s.mode {
	case "auto", "push":
	case "relay":
		if s.url != "" {
			return nil, fmt.Errorf("mode: relay sends src; with url every host downloads it itself")
		}
	default:
		return nil, fmt.Errorf("mode: %q is not auto, relay or push", s.mode)
	}
	if s.port < 0 || s.port > 65535 {
		return nil, fmt.Errorf("relay_port: %d is not a TCP port (1-65535, or 0 for any)", s.port)
	}
	if err := checkRemotePath("dest", s.dest); err != nil {
		return nil, err
	}
	if strings.HasSuffix(s.dest, "/") {
		return nil, fmt.Errorf("dest: %q is a directory; give the file's path", s.dest)
	}
	if s.sum != "" && !hexSum.MatchString(s.sum) {
		return nil, fmt.Errorf("sha256: %q is not 64 hex digits", s.sum)
	}
	if s.url != "" {
		u, err := url.Parse(s.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "ftp") || u.Host == "" {
			return nil, fmt.Errorf("url: %q is not an http, https or ftp URL", s.url)
		}
		if strings.ContainsAny(s.url, "\n\r\x00") {
			return nil, fmt.Errorf("url: holds a line break or NUL byte")
		}
	}
	return s, nil
}

// Run uploads src or has the host download url.
func (s *distribute) Run(ctx context.Context, t *Target) (Outputs, error) {
	if s.url != "" {
		return s.download(ctx, t)
	}
	f, st, err := openRegular("src", s.src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum, err := s.srcSum(t, f, st)
	if err != nil {
		return nil, err
	}
	dest, err := fileDest(ctx, t, s.dest, filepath.Base(s.src))
	if err != nil {
		return nil, err
	}
	if why := s.pushWhy(t); why == "" {
		out, pushWhy, err := s.relay(ctx, t, f, st, sum, dest)
		if pushWhy == "" {
			return out, err
		}
		logf(t, "distribute: %s: push instead\n", pushWhy)
	} else if s.mode != "push" {
		logf(t, "distribute: push, not relay: %s\n", why)
	}
	logf(t, "distribute %s (%d bytes, sha256 %s) to %s\n", s.src, st.Size(), sum, dest)
	if err := uploadFile(ctx, t, f, st.Size(), dest, 0o644, sum); err != nil {
		return nil, fmt.Errorf("upload %s to %s: %w", s.src, dest, err)
	}
	return Outputs{"sha256": sum}, nil
}

// srcSum is the sha256 of src: the one given, else computed once per
// run; a relay's manifest has it, so a relayed file is read once.
func (s *distribute) srcSum(t *Target, f *os.File, st fs.FileInfo) (string, error) {
	if s.sum != "" {
		return s.sum, nil
	}
	if s.pushWhy(t) == "" {
		m, err := s.hub.manifest(f, st)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", s.src, err)
		}
		return m.WholeHex(), nil
	}
	sum, err := s.sums.sum(f, st)
	if err != nil {
		return "", fmt.Errorf("sha256 of %s: %w", s.src, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("read %s: %w", s.src, err)
	}
	return sum, nil
}

// pushWhy says why the file goes by push ("" for relay).
func (s *distribute) pushWhy(t *Target) string {
	switch {
	case s.mode == "push":
		return "mode: push"
	case s.mode == "auto" && t.StepHosts < 3:
		return fmt.Sprintf("the step has %d host(s); relay is for 3 or more", t.StepHosts)
	case s.hub == nil || s.hub.agents == nil:
		return "no relay agents"
	}
	return ""
}

// relay gets the file to the host through a relay session. pushWhy, when
// not empty, says why the host is to get it by push instead.
func (s *distribute) relay(ctx context.Context, t *Target, f *os.File, st fs.FileInfo, sum, dest string) (_ Outputs, pushWhy string, _ error) {
	m, err := s.hub.manifest(f, st)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", s.src, err)
	}
	if sum != m.WholeHex() {
		return nil, "", fmt.Errorf("%s has sha256 %s, not the sha256 given (%s): it changed, or the plan is wrong", s.src, m.WholeHex(), sum)
	}
	sess, err := s.hub.join(s.src, m)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", s.src, err)
	}
	defer sess.leave()
	t.Secret(sess.token)
	agent, err := s.hub.ensureAgent(ctx, t)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", err
		}
		return nil, "relay agent: " + err.Error(), nil
	}
	logf(t, "distribute %s (%d bytes, sha256 %s) to %s by relay\n", s.src, st.Size(), sum, dest)
	for try := 0; ; try++ {
		mem, err := sess.startAgent(t, agent, dest, 0o644, s.port)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", err
			}
			return nil, "relay agent: " + err.Error(), nil
		}
		sess.place(mem, t.StepHosts)
		res := sess.await(ctx, t, mem, dest)
		mem.detach()
		switch {
		case res.push:
			sess.drop(mem)
			return nil, "cannot reach the other hosts' relay agents", nil
		case res.err == nil:
			logf(t, "relay: %s complete; the control machine has sent %d bytes of it so far\n", dest, sess.sentBytes())
			return Outputs{"sha256": m.WholeHex()}, "", nil
		case ctx.Err() != nil:
			sess.drop(mem)
			return nil, "", res.err
		case try < relayRejoin:
			sess.drop(mem)
			logf(t, "relay: %v: back in the chain, at its tail\n", res.err)
		default:
			sess.drop(mem)
			return nil, "", res.err
		}
	}
}

// downloadScript fetches $SF_URL into $SF_DEST through a partial file
// that an interrupted download continues, checks the sum when known and
// prints the file's sha256.
const downloadScript = `if [ -d "$SF_DEST" ]; then
	[ -n "$SF_NAME" ] || { echo "$SF_DEST is a directory and the URL names no file; give the file's path" >&2; exit 5; }
	SF_DEST="$SF_DEST/$SF_NAME"
fi
d=$(dirname -- "$SF_DEST")
mkdir -p -- "$d"
part="$d/.$(basename -- "$SF_DEST").sealflow-partial"
if [ -n "$SF_SUM" ] && [ -f "$SF_DEST" ]; then
	s=$(sha256sum <"$SF_DEST"); s=${s%% *}
	if [ "$s" = "$SF_SUM" ]; then echo "$s"; exit 0; fi
fi
if command -v curl >/dev/null 2>&1; then
	curl -fsSL --retry 3 --connect-timeout 30 --speed-limit 1024 --speed-time 120 -C - -o "$part" -- "$SF_URL" >&2 ||
	{ rm -f -- "$part"; curl -fsSL --retry 3 --connect-timeout 30 --speed-limit 1024 --speed-time 120 -o "$part" -- "$SF_URL" >&2; }
elif command -v wget >/dev/null 2>&1; then
	wget -q -c -T 60 -t 3 -O "$part" -- "$SF_URL" >&2
else
	echo "neither curl nor wget is installed on this host: install one, or distribute with src" >&2
	exit 3
fi
s=$(sha256sum <"$part"); s=${s%% *}
if [ -n "$SF_SUM" ] && [ "$s" != "$SF_SUM" ]; then
	rm -f -- "$part"
	echo "downloaded file has sha256 $s, want $SF_SUM" >&2
	exit 4
fi
chmod 0644 "$part"
mv -f -- "$part" "$SF_DEST"
echo "$s"
`

func (s *distribute) download(ctx context.Context, t *Target) (Outputs, error) {
	logf(t, "distribute: download %s to %s\n", s.url, s.dest)
	out, err := output(ctx, t, "download "+s.url+" to "+s.dest, downloadScript,
		map[string]string{"SF_URL": s.url, "SF_DEST": s.dest, "SF_SUM": s.sum, "SF_NAME": urlFileName(s.url)})
	if err != nil {
		return nil, err
	}
	sum := strings.TrimSpace(out)
	if !hexSum.MatchString(sum) {
		return nil, fmt.Errorf("download %s to %s: the host printed %q, want a sha256", s.url, s.dest, firstLine(sum))
	}
	return Outputs{"sha256": sum}, nil
}

// Done reports the task done when dest has the expected sha256.
func (s *distribute) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	sum := s.sum
	if sum == "" && s.src != "" {
		f, st, err := openRegular("src", s.src)
		if err != nil {
			return false, nil, err
		}
		sum, err = s.srcSum(t, f, st)
		f.Close()
		if err != nil {
			return false, nil, err
		}
	}
	if sum == "" {
		return false, nil, nil
	}
	name := filepath.Base(s.src)
	if s.url != "" {
		name = urlFileName(s.url)
	}
	dest, err := fileDest(ctx, t, s.dest, name)
	if err != nil {
		return false, nil, err
	}
	have, err := remoteSum(ctx, t, dest)
	if err != nil {
		return false, nil, err
	}
	if have != sum {
		return false, nil, nil
	}
	return true, Outputs{"sha256": sum}, nil
}

// CanCheck: a download without a known sha256 cannot be checked.
func (s *distribute) CanCheck() bool { return s.src != "" || s.sum != "" }

func (s *distribute) Describe(t *Target) []string {
	if s.url != "" {
		return []string{fmt.Sprintf("download %s to %s", s.url, s.dest)}
	}
	if s.pushWhy(t) == "" {
		return []string{fmt.Sprintf("send %s to %s by relay: the control machine sends it once, each host passes it on (skipped when the host has it)", s.src, s.dest)}
	}
	return []string{fmt.Sprintf("upload %s to %s (skipped when the host has it)", s.src, s.dest)}
}

// urlFileName is the last element of u's path ("" when there is none).
func urlFileName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	name := path.Base(p.Path)
	if name == "." || name == "/" || strings.ContainsAny(name, "\n\r\x00") {
		return ""
	}
	return name
}
