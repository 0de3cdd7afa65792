package steps

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
)

// joinCredentialsKind checks, on the first master, that the join
// credentials a run holds (kubeadm-init's bootstrap token and certificate
// key, journaled and restored on resume) still work for long enough, and
// renews what does not: a bootstrap token lasts 24 h, the uploaded
// control-plane certificates about 2 h, and a resume hours later would
// otherwise fail in kubeadm join. It runs on every run (EveryRun) and
// returns the credentials it was given while they are good, so the joins
// reading them stay unchanged; a run that renews nothing shows the task
// unchanged (its Done check).
func joinCredentialsKind() *Kind {
	return &Kind{
		Name: "join-credentials",
		Doc:  "on the first master: check that the bootstrap token and the uploaded certificates still live long enough, renew what does not; outputs token, certificate_key, ca_cert_hash for the joins",
		Params: []Param{
			{Name: "version", Type: String, Required: true, Doc: "the Kubernetes version (picks the kubeadm configuration API)"},
			{Name: "token", Type: String, Doc: "the bootstrap token held (kubeadm-init's output token); empty: make one"},
			{Name: "certificate_key", Type: String, Doc: "the key of the uploaded certificates held (kubeadm-init's output certificate_key); empty: make one"},
			{Name: "min_ttl", Type: String, Doc: "the time a credential must still live, else it is renewed (default " + defaultMinTTL.String() + ")"},
			{Name: "token_ttl", Type: String, Doc: "the lifetime of a new bootstrap token (default " + defaultTokenTTL.String() + ")"},
		},
		Rerunnable: true,
		EveryRun:   true,
		LoadCheck:  true,
		Secret:     []string{"token", "certificate_key"},
		New: func(p Params) (Step, error) {
			return newJoinCredentials(p, defaultPaths(), rand.Reader)
		},
	}
}

const (
	defaultMinTTL   = time.Hour
	defaultTokenTTL = 24 * time.Hour
	// certsTTL is how long kubeadm keeps uploaded certificates (the
	// kubeadm-certs secret belongs to a token of this lifetime).
	certsTTL = 2 * time.Hour
)

type joinCredentials struct {
	version  kubeVersion
	token    string
	key      string
	minTTL   time.Duration
	tokenTTL time.Duration
	paths    sysPaths
	rand     io.Reader
}

func newJoinCredentials(p Params, paths sysPaths, r io.Reader) (*joinCredentials, error) {
	s := &joinCredentials{paths: paths, rand: r, minTTL: defaultMinTTL, tokenTTL: defaultTokenTTL}
	v, _ := p["version"].(string)
	var err error
	if s.version, err = parseKubeVersion(v); err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	s.token, _ = p["token"].(string)
	s.key, _ = p["certificate_key"].(string)
	if s.token != "" && !tokenRE.MatchString(s.token) {
		return nil, fmt.Errorf("token: not a bootstrap token (want [a-z0-9]{6}.[a-z0-9]{16})")
	}
	if s.key != "" {
		if b, err := hex.DecodeString(s.key); err != nil || len(b) != 32 {
			return nil, fmt.Errorf("certificate_key: want 64 hex digits")
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"min_ttl", &s.minTTL}, {"token_ttl", &s.tokenTTL}} {
		if v, _ := p[d.name].(string); v != "" {
			if *d.dst, err = time.ParseDuration(v); err != nil || *d.dst <= 0 {
				return nil, fmt.Errorf("%s: %q: want a positive duration such as 1h or 30m", d.name, v)
			}
		}
	}
	if s.tokenTTL <= s.minTTL {
		return nil, fmt.Errorf("token_ttl (%s) must be longer than min_ttl (%s): a new token would be renewed at once", s.tokenTTL, s.minTTL)
	}
	if s.minTTL >= certsTTL {
		return nil, fmt.Errorf("min_ttl (%s) must be shorter than the %s uploaded certificates live", s.minTTL, certsTTL)
	}
	return s, nil
}

// joinCredentialsScript prints what the cluster holds of the credentials,
// one line each, without printing a secret:
//
//	now SECONDS                         the host's clock (the API server's)
//	token absent|mismatch|ok [EXPIRY]   the bootstrap-token secret of $SF_TOKEN's id
//	certs absent|present CREATED OWNER  kubeadm-certs: its creation time and its
//	                                    owner token's expiry (- without one,
//	                                    gone when that token no longer exists)
//	certdata BASE64                     kubeadm-certs' encrypted ca.crt
//
// The token's secret half is compared in the shell (builtins only): it
// is on no command line and in no output.
const joinCredentialsScript = `a="$SF_KUBE/admin.conf"
kc() { kubectl --kubeconfig "$a" --request-timeout=20s -n kube-system "$@"; }
echo "now $(date -u +%s)"
if [ -z "$SF_TOKEN" ]; then
	echo "token absent"
else
	id=${SF_TOKEN%%.*}
	v=$(kc get secret "bootstrap-token-$id" --ignore-not-found -o 'jsonpath={.data.token-secret} {.data.expiration}')
	set -- $v
	if [ -z "${1:-}" ]; then
		echo "token absent"
	elif [ "$(printf '%s' "$1" | base64 -d)" != "${SF_TOKEN#*.}" ]; then
		echo "token mismatch"
	else
		e=
		if [ -n "${2:-}" ]; then e=$(printf '%s' "$2" | base64 -d); fi
		echo "token ok $e"
	fi
fi
v=$(kc get secret kubeadm-certs --ignore-not-found -o 'jsonpath={.metadata.creationTimestamp} {.metadata.ownerReferences[0].name}')
set -- $v
if [ -z "${1:-}" ]; then
	echo "certs absent"
	exit 0
fi
o=-
if [ -n "${2:-}" ]; then
	e=$(kc get secret "$2" --ignore-not-found -o 'jsonpath={.data.expiration}')
	if [ -n "$e" ]; then o=$(printf '%s' "$e" | base64 -d); else o=gone; fi
fi
echo "certs present $1 $o"
echo "certdata $(kc get secret kubeadm-certs -o 'jsonpath={.data.ca\.crt}')"
`

// credState is what joinCredentialsScript found.
type credState struct {
	now        time.Time
	token      string    // absent, mismatch or ok
	tokenUntil time.Time // zero: never expires
	certs      bool
	certsUntil time.Time // zero: gone
	certData   string
}

func parseCredState(out string) (credState, error) {
	var c credState
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		seen[f[0]] = true
		bad := fmt.Errorf("check join credentials: the host printed %q", firstLine(line))
		switch {
		case f[0] == "now" && len(f) == 2:
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return c, bad
			}
			c.now = time.Unix(n, 0)
		case f[0] == "token" && len(f) >= 2:
			c.token = f[1]
			if f[1] == "ok" && len(f) == 3 {
				t, err := time.Parse(time.RFC3339, f[2])
				if err != nil {
					return c, bad
				}
				c.tokenUntil = t
			}
		case f[0] == "certs" && f[1] == "absent":
		case f[0] == "certs" && len(f) == 4 && f[1] == "present":
			c.certs = true
			switch f[3] {
			case "gone":
			case "-":
				created, err := time.Parse(time.RFC3339, f[2])
				if err != nil {
					return c, bad
				}
				c.certsUntil = created.Add(certsTTL)
			default:
				t, err := time.Parse(time.RFC3339, f[3])
				if err != nil {
					return c, bad
				}
				c.certsUntil = t
			}
		case f[0] == "certdata":
			if len(f) == 2 {
				c.certData = f[1]
			}
		default:
			return c, bad
		}
	}
	if !seen["now"] || !seen["token"] || !seen["certs"] {
		return c, fmt.Errorf("check join credentials: the host's answer is incomplete")
	}
	return c, nil
}

// Done reports the task done, with the credentials held as outputs, when
// both still live long enough: a run that renews nothing shows it
// unchanged.
func (s *joinCredentials) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	renewToken, renewCerts, err := s.check(ctx, t)
	if err != nil || renewToken || renewCerts {
		return false, nil, err
	}
	hash, err := readCAHash(ctx, t, s.paths.Kube)
	if err != nil {
		return false, nil, err
	}
	return true, Outputs{"token": s.token, "certificate_key": s.key, "ca_cert_hash": hash}, nil
}

// check asks the first master what it holds of the credentials and says
// (in the log, too) what must be renewed.
func (s *joinCredentials) check(ctx context.Context, t *Target) (renewToken, renewCerts bool, err error) {
	t.Secret(s.token, s.key)
	env := map[string]string{"SF_KUBE": s.paths.Kube, "SF_TOKEN": s.token}
	out, err := output(ctx, t, "check join credentials", joinCredentialsScript, env)
	if err != nil {
		return false, false, err
	}
	st, err := parseCredState(out)
	if err != nil {
		return false, false, err
	}
	renewToken, why := s.tokenVerdict(st)
	logf(t, "bootstrap token: %s\n", why)
	if s.version.uploadCertsFlags() != "" {
		if s.key == "" {
			renewCerts, why = true, "no certificate key held: uploading with a new one"
		} else {
			renewCerts, why = s.certsVerdict(st, s.key)
		}
		logf(t, "uploaded certificates: %s\n", why)
	}
	return renewToken, renewCerts, nil
}

func (s *joinCredentials) Run(ctx context.Context, t *Target) (Outputs, error) {
	renewToken, renewCerts, err := s.check(ctx, t)
	if err != nil {
		return nil, err
	}
	token, key := s.token, s.key
	if renewToken {
		if token, err = newToken(s.rand); err != nil {
			return nil, err
		}
		t.Secret(token)
	}
	if renewCerts && key == "" {
		if key, err = newCertificateKey(s.rand); err != nil {
			return nil, err
		}
		t.Secret(key)
	}
	if renewToken || renewCerts {
		if err := s.renew(ctx, t, token, key, renewToken, renewCerts); err != nil {
			return nil, err
		}
	}
	hash, err := readCAHash(ctx, t, s.paths.Kube)
	if err != nil {
		return nil, err
	}
	return Outputs{"token": token, "certificate_key": key, "ca_cert_hash": hash}, nil
}

// tokenVerdict says whether the token must be renewed, and why.
func (s *joinCredentials) tokenVerdict(st credState) (bool, string) {
	switch {
	case s.token == "":
		return true, "none held: creating one"
	case st.token == "absent":
		return true, "no longer in the cluster (expired or deleted): creating a new one"
	case st.token == "mismatch":
		return true, "the cluster's token of that id has another secret: creating a new one"
	case st.token != "ok":
		return true, "state " + st.token + ": creating a new one"
	case st.tokenUntil.IsZero():
		return false, "valid, does not expire"
	}
	left := st.tokenUntil.Sub(st.now)
	if left < s.minTTL {
		return true, fmt.Sprintf("expires in %s (less than min_ttl %s): creating a new one", left.Truncate(time.Second), s.minTTL)
	}
	return false, fmt.Sprintf("valid for %s more", left.Truncate(time.Second))
}

// certsVerdict says whether the certificates must be uploaded again
// (with key), and why.
func (s *joinCredentials) certsVerdict(st credState, key string) (bool, string) {
	switch {
	case !st.certs:
		return true, "not in the cluster (kubeadm-certs is gone): uploading them again"
	case st.certsUntil.IsZero():
		return true, "their owner token has expired: uploading them again"
	}
	if left := st.certsUntil.Sub(st.now); left < s.minTTL {
		return true, fmt.Sprintf("expire in %s (less than min_ttl %s): uploading them again", left.Truncate(time.Second), s.minTTL)
	}
	if !opensWith(st.certData, key) {
		return true, "encrypted with another key than the one held: uploading them again"
	}
	return false, fmt.Sprintf("uploaded, valid for %s more", st.certsUntil.Sub(st.now).Truncate(time.Second))
}

// opensWith reports whether data (base64 of kubeadm's encryption: a
// nonce, then AES-GCM with the certificate key) decrypts with key.
func opensWith(data, hexKey string) bool {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return false
	}
	k, err := hex.DecodeString(hexKey)
	if err != nil {
		return false
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return false
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil || len(raw) < gcm.NonceSize() {
		return false
	}
	_, err = gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
	return err == nil
}

// renew creates the token and uploads the certificates from a
// configuration file that holds them (0600 in a 0700 directory, removed
// after): neither is on a command line, and kubeadm's stdout, which shows
// the key, is dropped.
func (s *joinCredentials) renew(ctx context.Context, t *Target, token, key string, renewToken, renewCerts bool) error {
	dir := path.Join(s.paths.State, "kubeadm")
	cfgPath := path.Join(dir, "join-credentials.yaml")
	env := map[string]string{"SF_DIR": dir, "SF_CONFIG": cfgPath, "SF_KEY": key}
	if err := run(ctx, t, "create "+dir, privateDirScript, env); err != nil {
		return err
	}
	defer removeFiles(ctx, t, env, cfgPath)
	if err := upload(ctx, t, s.config(token, key), cfgPath); err != nil {
		return err
	}
	if renewToken {
		if err := runTo(ctx, t, "kubeadm token create", `kubeadm token create --config "$SF_CONFIG"`, env, io.Discard, t.Log); err != nil {
			return err
		}
		logf(t, "created a bootstrap token valid for %s\n", s.tokenTTL)
	}
	if renewCerts {
		if err := runTo(ctx, t, "kubeadm init phase upload-certs",
			"kubeadm init phase upload-certs "+s.version.uploadCertsFlags()+` --config "$SF_CONFIG"`, env, io.Discard, t.Log); err != nil {
			return err
		}
		logf(t, "uploaded the control-plane certificates (valid for %s)\n", certsTTL)
	}
	return nil
}

// config is the kubeadm configuration renew gives kubeadm: the token with
// its lifetime, the certificate key, and the version (so that kubeadm
// asks no one on the internet for it).
func (s *joinCredentials) config(token, key string) []byte {
	api := s.version.APIVersion()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: InitConfiguration\n", api)
	fmt.Fprintf(&b, "bootstrapTokens:\n- token: %q\n  ttl: %q\n", token, s.tokenTTL.String())
	b.WriteString("  usages: [signing, authentication]\n  groups: [system:bootstrappers:kubeadm:default-node-token]\n")
	b.WriteString("  description: \"sealflow join credentials\"\n")
	if key != "" && s.version.Minor >= 15 {
		fmt.Fprintf(&b, "certificateKey: %q\n", key)
	}
	fmt.Fprintf(&b, "---\napiVersion: %s\nkind: ClusterConfiguration\nkubernetesVersion: %q\n", api, s.version.Text)
	return []byte(b.String())
}

func (s *joinCredentials) Describe(t *Target) []string {
	return []string{fmt.Sprintf("check the bootstrap token and the uploaded certificates on this master; renew what lives less than %s", s.minTTL)}
}
