package steps

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/goccy/go-yaml"
)

// A user's kubeadm join configuration (the join kind's kubeadm_config).
//
// The file is the user's: every field set in it is used as given, and the
// documents other than the JoinConfiguration are passed on to kubeadm
// unchanged. sealflow fills only what a file written before the cluster
// exists cannot know, and only where the file leaves it empty:
//
//	discovery.bootstrapToken.token, .apiServerEndpoint, .caCertHashes
//	  (unless the file uses discovery.file)
//	nodeRegistration.name            the node_name param or the host's name
//	controlPlane.certificateKey      masters, v1.15 on (v1.14 takes a flag)
//	controlPlane.localAPIEndpoint.advertiseAddress   masters: advertise_address or the host's address
//
// A master's file without controlPlane gets one; a worker's file with
// controlPlane is refused (it would join a control-plane node).

// userJoinConfig is a parsed kubeadm_config file.
type userJoinConfig struct {
	path string
	docs []yaml.MapSlice
	join int // index of the JoinConfiguration in docs
}

// readUserJoinConfig reads and checks the file: YAML mappings with
// apiVersion and kind, exactly one JoinConfiguration, every kubeadm
// document in the API of the version.
func readUserJoinConfig(file string, v kubeVersion) (*userJoinConfig, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("kubeadm_config: read %s: %w", file, errors.Unwrap(err))
	}
	u := &userJoinConfig{path: file, join: -1}
	dec := yaml.NewDecoder(bytes.NewReader(b), yaml.UseOrderedMap())
	for n := 1; ; n++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("kubeadm_config %s: not YAML: %v", file, err)
		}
		if doc == nil {
			continue // an empty document, as a leading "---" makes
		}
		m, ok := doc.(yaml.MapSlice)
		if !ok {
			return nil, fmt.Errorf("kubeadm_config %s: document %d is not a mapping with apiVersion and kind", file, n)
		}
		api, _ := msString(m, "apiVersion")
		kind, _ := msString(m, "kind")
		if api == "" || kind == "" {
			return nil, fmt.Errorf("kubeadm_config %s: document %d has no apiVersion or kind", file, n)
		}
		if strings.HasPrefix(api, "kubeadm.k8s.io/") && api != v.APIVersion() {
			return nil, fmt.Errorf("kubeadm_config %s: document %d (%s) is %s, but kubeadm %s reads %s (convert it with `kubeadm config migrate`)",
				file, n, kind, api, v.Text, v.APIVersion())
		}
		if kind == "JoinConfiguration" {
			if u.join >= 0 {
				return nil, fmt.Errorf("kubeadm_config %s: more than one JoinConfiguration (documents %d and %d)", file, u.join+1, n)
			}
			u.join = len(u.docs)
		}
		u.docs = append(u.docs, m)
	}
	if u.join < 0 {
		return nil, fmt.Errorf("kubeadm_config %s: no JoinConfiguration document: kubeadm join takes its settings from one "+
			"(apiVersion: %s, kind: JoinConfiguration)", file, v.APIVersion())
	}
	return u, nil
}

// merged returns the file's documents with the JoinConfiguration filled
// from p (for one host), the names of the fields filled, and the secret
// values the file itself holds (a token or key the user wrote).
func (u *userJoinConfig) merged(p joinParams) (out []byte, filled, secrets []string, err error) {
	if err := checkJoinParams(p); err != nil {
		return nil, nil, nil, err
	}
	doc := cloneMap(u.docs[u.join])
	fill := func(path string, v any) error {
		var done bool
		doc, done, err = msFill(doc, strings.Split(path, "."), v)
		if err != nil {
			return fmt.Errorf("kubeadm_config %s: JoinConfiguration %s", u.path, err)
		}
		if done {
			filled = append(filled, path)
		}
		return nil
	}
	if _, hasFile := msPath(doc, "discovery", "file"); !hasFile {
		if err := fill("discovery.bootstrapToken.token", p.Token); err != nil {
			return nil, nil, nil, err
		}
		if err := fill("discovery.bootstrapToken.apiServerEndpoint", p.Endpoint); err != nil {
			return nil, nil, nil, err
		}
		if err := fill("discovery.bootstrapToken.caCertHashes", []any{p.CACertHash}); err != nil {
			return nil, nil, nil, err
		}
	}
	if p.NodeName != "" {
		if err := fill("nodeRegistration.name", p.NodeName); err != nil {
			return nil, nil, nil, err
		}
	}
	// controlPlane: {} is still a control-plane join for kubeadm.
	hasCP := false
	for _, it := range doc {
		if k, _ := it.Key.(string); k == "controlPlane" && it.Value != nil {
			hasCP = true
		}
	}
	switch {
	case p.ControlPlane:
		if p.Version.keyInConfig() {
			if err := fill("controlPlane.certificateKey", p.CertificateKey); err != nil {
				return nil, nil, nil, err
			}
		}
		if p.AdvertiseAddress != "" {
			if err := fill("controlPlane.localAPIEndpoint.advertiseAddress", p.AdvertiseAddress); err != nil {
				return nil, nil, nil, err
			}
		}
	case hasCP:
		return nil, nil, nil, fmt.Errorf("kubeadm_config %s: the JoinConfiguration has controlPlane, which joins a master, but role is node", u.path)
	}
	for _, k := range [][]string{{"discovery", "bootstrapToken", "token"}, {"discovery", "tlsBootstrapToken"}, {"controlPlane", "certificateKey"}} {
		if s, ok := msPath(doc, k...); ok {
			if s, ok := s.(string); ok && s != "" {
				secrets = append(secrets, s)
			}
		}
	}
	docs := make([]any, len(u.docs))
	for i, d := range u.docs {
		docs[i] = d
	}
	docs[u.join] = doc
	out, err = marshalDocs(docs...)
	return out, filled, secrets, err
}

// msString returns m[key] when it is a string.
func msString(m yaml.MapSlice, key string) (string, bool) {
	for _, it := range m {
		if k, _ := it.Key.(string); k == key {
			s, ok := it.Value.(string)
			return s, ok
		}
	}
	return "", false
}

// msPath returns the value at the path of keys, when every step of it is
// a mapping and the value is not empty.
func msPath(m yaml.MapSlice, keys ...string) (any, bool) {
	var cur any = m
	for _, key := range keys {
		mm, ok := cur.(yaml.MapSlice)
		if !ok {
			return nil, false
		}
		found := false
		for _, it := range mm {
			if k, _ := it.Key.(string); k == key {
				cur, found = it.Value, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return cur, !isEmpty(cur)
}

// isEmpty: what a user leaves a field with when they mean "not set".
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case yaml.MapSlice:
		return len(v) == 0
	}
	return false
}

// msFill sets the value at the path of keys when it is missing or empty,
// creating the mappings on the way; it reports whether it set it. A step
// of the path that holds something other than a mapping is an error.
func msFill(m yaml.MapSlice, keys []string, v any) (yaml.MapSlice, bool, error) {
	i := -1
	for j, it := range m {
		if k, _ := it.Key.(string); k == keys[0] {
			i = j
			break
		}
	}
	if len(keys) == 1 {
		if i >= 0 && !isEmpty(m[i].Value) {
			return m, false, nil
		}
		if i >= 0 {
			m[i].Value = v
		} else {
			m = append(m, yaml.MapItem{Key: keys[0], Value: v})
		}
		return m, true, nil
	}
	var sub yaml.MapSlice
	if i >= 0 && m[i].Value != nil {
		var ok bool
		if sub, ok = m[i].Value.(yaml.MapSlice); !ok {
			return m, false, fmt.Errorf("%s is not a mapping", keys[0])
		}
	}
	sub, done, err := msFill(sub, keys[1:], v)
	if err != nil {
		return m, false, fmt.Errorf("%s.%w", keys[0], err)
	}
	if i >= 0 {
		m[i].Value = sub
	} else {
		m = append(m, yaml.MapItem{Key: keys[0], Value: sub})
	}
	return m, done, nil
}

// cloneMap copies the mappings of m (deeply), so that filling one host's
// configuration leaves the parsed file as it was.
func cloneMap(m yaml.MapSlice) yaml.MapSlice {
	out := make(yaml.MapSlice, len(m))
	for i, it := range m {
		if sub, ok := it.Value.(yaml.MapSlice); ok {
			it.Value = cloneMap(sub)
		}
		out[i] = it
	}
	return out
}
