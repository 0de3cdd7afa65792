package steps

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClusterKubectl answers the reads of joinCredentialsScript from
// $FAKE_DIR/secrets/NAME/FIELD files (values in clear; kubectl's .data
// is base64, as the real one prints it).
const fakeClusterKubectl = `name= jp= prev=
for a in "$@"; do
	case $prev in secret) name=$a;; -o) jp=$a;; esac
	prev=$a
done
d="$FAKE_DIR/secrets/$name"
[ -d "$d" ] || exit 0
b() { if [ -f "$d/$1" ]; then printf '%s' "$(cat "$d/$1")" | base64 -w0; fi; }
case $jp in
'jsonpath={.data.token-secret} {.data.expiration}') printf '%s %s' "$(b token-secret)" "$(b expiration)";;
'jsonpath={.metadata.creationTimestamp} {.metadata.ownerReferences[0].name}') printf '%s %s' "$(cat "$d/created")" "$(cat "$d/owner" 2>/dev/null || true)";;
'jsonpath={.data.expiration}') b expiration;;
'jsonpath={.data.ca\.crt}') cat "$d/ca.crt";;
*) echo "fake kubectl: unexpected $*" >&2; exit 1;;
esac
`

// fakeClusterKubeadm records its arguments and configuration (like
// fakeKubeadm) and changes the fake cluster: token create adds the
// configuration's token (expiring after its ttl, 24h here), upload-certs
// makes kubeadm-certs owned by a token of 2 h, its ca.crt sealed with the
// configuration's key (from $FAKE_DIR/sealed.KEY, made by the test).
const fakeClusterKubeadm = `n=$(cat "$FAKE_DIR/kubeadm.n" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$FAKE_DIR/kubeadm.n"
printf '%s\n' "$*" >>"$FAKE_DIR/kubeadm.calls"
cfg=; prev=
for a in "$@"; do
	if [ "$prev" = --config ]; then cfg=$a; fi
	prev=$a
done
cat "$cfg" >"$FAKE_DIR/config.$n"
case "$1 $2 $3" in
"token create --config")
	tok=$(sed -n 's/^- token: "\(.*\)"$/\1/p' "$cfg")
	d="$FAKE_DIR/secrets/bootstrap-token-${tok%%.*}"
	mkdir -p "$d"
	printf '%s' "${tok#*.}" >"$d/token-secret"
	date -u -d '+24 hours' +%Y-%m-%dT%H:%M:%SZ >"$d/expiration"
	echo "$tok"
	;;
"init phase upload-certs")
	key=$(sed -n 's/^certificateKey: "\(.*\)"$/\1/p' "$cfg")
	d="$FAKE_DIR/secrets/kubeadm-certs"
	mkdir -p "$d" "$FAKE_DIR/secrets/bootstrap-token-cert01"
	date -u +%Y-%m-%dT%H:%M:%SZ >"$d/created"
	echo bootstrap-token-cert01 >"$d/owner"
	date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ >"$FAKE_DIR/secrets/bootstrap-token-cert01/expiration"
	cp "$FAKE_DIR/sealed.$key" "$d/ca.crt"
	echo "[upload-certs] Using certificate key:"
	echo "$key"
	;;
esac
`

const (
	credToken = "abcdef.0123456789abcdef"
	credKey   = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	otherKey  = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
)

// seal encrypts data with a certificate key as kubeadm stores uploaded
// certificates (a nonce, then AES-GCM), in base64 as kubectl prints .data.
func seal(t *testing.T, hexKey string, data []byte) string {
	t.Helper()
	k, err := hex.DecodeString(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, data, nil))
}

type credCluster struct {
	*lab
	hash string
}

func newCredCluster(t *testing.T) *credCluster {
	t.Helper()
	l := newLab(t)
	l.fake(t, "kubectl", fakeClusterKubectl)
	l.fake(t, "kubeadm", fakeClusterKubeadm)
	ca, hash := testCA(t)
	l.write(t, filepath.Join(l.paths.Kube, "pki", "ca.crt"), string(ca))
	l.write(t, filepath.Join(l.paths.Kube, "admin.conf"), "admin kubeconfig\n")
	for _, k := range []string{credKey, otherKey} {
		l.write(t, filepath.Join(l.dir, "sealed."+k), seal(t, k, ca))
	}
	return &credCluster{lab: l, hash: hash}
}

func rfc(d time.Duration) string { return time.Now().UTC().Add(d).Format(time.RFC3339) }

// token puts a bootstrap token in the fake cluster, expiring after ttl.
func (c *credCluster) token(t *testing.T, token string, ttl time.Duration) {
	t.Helper()
	d := filepath.Join(c.dir, "secrets", "bootstrap-token-"+token[:6])
	c.write(t, filepath.Join(d, "token-secret"), token[7:])
	c.write(t, filepath.Join(d, "expiration"), rfc(ttl))
}

// certs puts kubeadm-certs in the fake cluster, sealed with key, created
// age ago and owned by a token expiring after ttl (ttl 0: no owner; ttl
// < 0: the owner is gone).
func (c *credCluster) certs(t *testing.T, key string, age, ttl time.Duration) {
	t.Helper()
	d := filepath.Join(c.dir, "secrets", "kubeadm-certs")
	c.write(t, filepath.Join(d, "created"), rfc(-age))
	c.write(t, filepath.Join(d, "ca.crt"), c.read(t, "sealed."+key))
	switch {
	case ttl > 0:
		c.write(t, filepath.Join(d, "owner"), "bootstrap-token-owner1")
		c.write(t, filepath.Join(c.dir, "secrets", "bootstrap-token-owner1", "expiration"), rfc(ttl))
	case ttl < 0:
		c.write(t, filepath.Join(d, "owner"), "bootstrap-token-gone01")
	}
}

func (c *credCluster) run(t *testing.T, p Params) Outputs {
	t.Helper()
	s, err := newJoinCredentials(p, c.paths, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Run(context.Background(), c.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, c.log.String())
	}
	return out
}

func credParams(token, key string) Params {
	return Params{"version": "v1.34.4", "token": token, "certificate_key": key}
}

// The kubeadm calls a case expects: what was renewed.
const (
	callToken = "token create --config "
	callCerts = "init phase upload-certs --upload-certs --config "
)

func (c *credCluster) renewed(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, call := range c.kubeadmCalls(t) {
		switch {
		case strings.HasPrefix(call, callToken):
			out = append(out, "token")
		case strings.HasPrefix(call, callCerts):
			out = append(out, "certs")
		default:
			t.Errorf("unexpected kubeadm call %q", call)
		}
	}
	return out
}

func TestJoinCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		min     string // min_ttl ("" default 1h)
		setup   func(t *testing.T, c *credCluster)
		renewed []string
		log     []string // what the log says of each
	}{
		{"both valid", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 20*time.Hour)
			c.certs(t, credKey, 30*time.Minute, 90*time.Minute)
		}, nil, []string{"bootstrap token: valid for ", "uploaded certificates: uploaded, valid for 1h"}},
		{"token missing", "", func(t *testing.T, c *credCluster) {
			c.certs(t, credKey, 30*time.Minute, 90*time.Minute)
		}, []string{"token"}, []string{"no longer in the cluster"}},
		{"token near expiry", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 30*time.Minute)
			c.certs(t, credKey, 30*time.Minute, 90*time.Minute)
		}, []string{"token"}, []string{"bootstrap token: expires in ", "less than min_ttl 1h0m0s"}},
		{"token near expiry, short min_ttl", "10m", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 30*time.Minute)
			c.certs(t, credKey, 30*time.Minute, 90*time.Minute)
		}, nil, []string{"bootstrap token: valid for "}},
		{"token of another secret", "", func(t *testing.T, c *credCluster) {
			c.token(t, "abcdef.ffffffffffffffff", 20*time.Hour)
			c.certs(t, credKey, 30*time.Minute, 90*time.Minute)
		}, []string{"token"}, []string{"another secret"}},
		{"certs gone", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 20*time.Hour)
		}, []string{"certs"}, []string{"kubeadm-certs is gone"}},
		{"certs about to expire", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 20*time.Hour)
			c.certs(t, credKey, 110*time.Minute, 10*time.Minute)
		}, []string{"certs"}, []string{"uploaded certificates: expire in "}},
		{"certs owner token expired", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 20*time.Hour)
			c.certs(t, credKey, 3*time.Hour, -1)
		}, []string{"certs"}, []string{"owner token has expired"}},
		{"certs old, no owner", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 20*time.Hour)
			c.certs(t, credKey, 3*time.Hour, 0)
		}, []string{"certs"}, []string{"uploaded certificates: expire in -1h"}},
		{"certs of another key", "", func(t *testing.T, c *credCluster) {
			c.token(t, credToken, 20*time.Hour)
			c.certs(t, otherKey, 10*time.Minute, 110*time.Minute)
		}, []string{"certs"}, []string{"another key"}},
		{"both expired (a resume a day later)", "", func(t *testing.T, c *credCluster) {}, []string{"token", "certs"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCredCluster(t)
			tc.setup(t, c)
			p := credParams(credToken, credKey)
			if tc.min != "" {
				p["min_ttl"] = tc.min
			}
			s, err := newJoinCredentials(p, c.paths, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			// The engine asks Done first: done means nothing to renew.
			done, doneOut, err := s.Done(context.Background(), c.target())
			if err != nil {
				t.Fatalf("Done: %v\nlog:\n%s", err, c.log.String())
			}
			if done != (len(tc.renewed) == 0) {
				t.Errorf("Done = %v, want %v (renews %v)", done, len(tc.renewed) == 0, tc.renewed)
			}
			if done && (doneOut["token"] != credToken || doneOut["certificate_key"] != credKey || doneOut["ca_cert_hash"] != c.hash) {
				t.Errorf("Done's outputs %v, want the credentials held", doneOut)
			}
			out := c.run(t, p)
			got := c.renewed(t)
			if strings.Join(got, ",") != strings.Join(tc.renewed, ",") {
				t.Errorf("renewed %v, want %v\nlog:\n%s", got, tc.renewed, c.log.String())
			}
			for _, w := range tc.log {
				if !strings.Contains(c.log.String(), w) {
					t.Errorf("the log does not say %q:\n%s", w, c.log.String())
				}
			}
			tokenRenewed := strings.Contains(strings.Join(got, ","), "token")
			switch {
			case !tokenRenewed && out["token"] != credToken:
				t.Errorf("the token was kept but the output is another one")
			case tokenRenewed && (out["token"] == credToken || !tokenRE.MatchString(out["token"])):
				t.Errorf("the token was renewed but the output is %q", out["token"])
			}
			// The key stays the one held: re-uploaded certificates use it,
			// so the masters' joins keep their parameters.
			if out["certificate_key"] != credKey || out["ca_cert_hash"] != c.hash {
				t.Errorf("outputs %v, want the key held and ca_cert_hash %s", out, c.hash)
			}
			for i, n := range got {
				cfg := c.read(t, "config."+string(rune('1'+i)))
				switch n {
				case "token":
					if !strings.Contains(cfg, `- token: "`+out["token"]+`"`) || !strings.Contains(cfg, `ttl: "24h0m0s"`) {
						t.Errorf("token create got:\n%s", cfg)
					}
				case "certs":
					if !strings.Contains(cfg, `certificateKey: "`+credKey+`"`) {
						t.Errorf("upload-certs got:\n%s", cfg)
					}
				}
				if !strings.Contains(cfg, `kubernetesVersion: "v1.34.4"`) {
					t.Errorf("the configuration names no version (kubeadm would ask the internet):\n%s", cfg)
				}
			}
			if exists(filepath.Join(c.paths.State, "kubeadm", "join-credentials.yaml")) {
				t.Error("the configuration file (it holds the token and key) is left on the host")
			}
			c.noSecrets(t, credToken, credKey, out["token"])
			calls, _ := os.ReadFile(filepath.Join(c.dir, "kubeadm.calls"))
			for _, s := range []string{credToken, credKey, out["token"]} {
				if strings.Contains(string(calls), s) {
					t.Errorf("a secret is on kubeadm's command line:\n%s", calls)
				}
			}
			c.noInjection(t)
		})
	}
}

// Nothing held (a plan without kubeadm-init's outputs): both are made;
// the next run finds them valid and renews nothing, returning the same
// credentials, so the joins reading them do not change.
func TestJoinCredentialsRerunnable(t *testing.T) {
	t.Parallel()
	c := newCredCluster(t)
	// The fake kubeadm seals the certificates from sealed.KEY: the new
	// key is made predictable (newToken reads 32 bytes, then
	// newCertificateKey 32).
	rnd := strings.NewReader(strings.Repeat("\x11", 32) + strings.Repeat("\x00", 32))
	s, err := newJoinCredentials(credParams("", ""), c.paths, rnd)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("0", 64)
	ca, _ := os.ReadFile(filepath.Join(c.paths.Kube, "pki", "ca.crt"))
	c.write(t, filepath.Join(c.dir, "sealed."+key), seal(t, key, ca))
	first, err := s.Run(context.Background(), c.target())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, c.log.String())
	}
	if got := strings.Join(c.renewed(t), ","); got != "token,certs" {
		t.Fatalf("first run renewed %s, want token,certs\nlog:\n%s", got, c.log.String())
	}
	if first["certificate_key"] != key || !tokenRE.MatchString(first["token"]) {
		t.Fatalf("first outputs %v", first)
	}
	second := c.run(t, credParams(first["token"], first["certificate_key"]))
	if got := strings.Join(c.renewed(t), ","); got != "token,certs" {
		t.Errorf("the second run renewed again: kubeadm calls %v", c.kubeadmCalls(t))
	}
	if second["token"] != first["token"] || second["certificate_key"] != first["certificate_key"] || second["ca_cert_hash"] != first["ca_cert_hash"] {
		t.Errorf("the second run changed the outputs: %v, then %v", first, second)
	}
	c.noSecrets(t, first["token"], first["certificate_key"])
}

func TestJoinCredentialsParams(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p       Params
		wantErr string
	}{
		{Params{"version": "v1.34.4"}, ""},
		{Params{"version": "v1.34.4", "token": "nope"}, "token: not a bootstrap token"},
		{Params{"version": "v1.34.4", "certificate_key": "abc"}, "certificate_key: want 64 hex digits"},
		{Params{"version": "v1.34.4", "min_ttl": "soon"}, "min_ttl"},
		{Params{"version": "v1.34.4", "min_ttl": "3h"}, "shorter than the 2h0m0s"},
		{Params{"version": "v1.34.4", "token_ttl": "30m"}, "token_ttl (30m0s) must be longer"},
		{Params{"version": "1.x"}, "version"},
	} {
		_, err := joinCredentialsKind().New(tc.p)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v: error %v, want %q", tc.p, err, tc.wantErr)
		}
		if err != nil && tc.p["token"] != nil && strings.Contains(err.Error(), tc.p["token"].(string)) {
			t.Errorf("the error shows the token: %v", err)
		}
	}
}
