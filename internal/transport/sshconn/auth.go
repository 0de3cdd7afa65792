package sshconn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// authMethods builds the methods to offer and names them for error
// messages. The returned closer releases the agent connection.
func authMethods(cfg *Config) (methods []ssh.AuthMethod, names []string, closer func(), err error) {
	closer = func() {}
	var signers []ssh.Signer
	var keyNames []string
	for _, file := range cfg.KeyFiles {
		s, err := loadKey(cfg, file)
		if err != nil {
			return nil, nil, closer, err
		}
		signers = append(signers, s)
		keyNames = append(keyNames, filepath.Base(file))
	}
	if cfg.UseAgent {
		sock := os.Getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, nil, closer, fmt.Errorf("host %s: the SSH agent is to be used but SSH_AUTH_SOCK is not set", cfg.HostName)
		}
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, closer, fmt.Errorf("host %s: connect to the SSH agent at %s: %w", cfg.HostName, sock, err)
		}
		closer = func() { ac.Close() }
		agentSigners, err := agent.NewClient(ac).Signers()
		if err != nil {
			closer()
			return nil, nil, func() {}, fmt.Errorf("host %s: list the SSH agent's keys: %w", cfg.HostName, err)
		}
		signers = append(signers, agentSigners...)
		keyNames = append(keyNames, fmt.Sprintf("agent: %d keys", len(agentSigners)))
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
		names = append(names, "publickey ("+strings.Join(keyNames, ", ")+")")
	}
	if cfg.Password != nil {
		pw := cfg.Password
		methods = append(methods, ssh.PasswordCallback(pw))
		methods = append(methods, ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
			answers := make([]string, len(questions))
			for i, q := range questions {
				if echos[i] || !strings.Contains(strings.ToLower(q), "password") {
					return nil, fmt.Errorf("unexpected keyboard-interactive question %q", q)
				}
				p, err := pw()
				if err != nil {
					return nil, err
				}
				answers[i] = p
			}
			return answers, nil
		}))
		names = append(names, "password", "keyboard-interactive")
	}
	return methods, names, closer, nil
}

func loadKey(cfg *Config, file string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("host %s: read private key: %w", cfg.HostName, err)
	}
	// As ssh does (it then ignores the key; sealflow uses it, but says so).
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		cfg.logf("WARNING: UNPROTECTED PRIVATE KEY FILE! Permissions %#o for %s are too open: it is readable by other users of this machine. "+
			"ssh would ignore it; run chmod 600 %s", fi.Mode().Perm(), file, file)
	}
	s, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if cfg.KeyPassphrase == nil {
			return nil, fmt.Errorf("host %s: private key %s is encrypted and no passphrase was given", cfg.HostName, file)
		}
		pass, perr := cfg.KeyPassphrase(file)
		if perr != nil {
			return nil, fmt.Errorf("host %s: passphrase of %s: %w", cfg.HostName, file, perr)
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(pem, pass)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("host %s: private key %s: wrong passphrase", cfg.HostName, file)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: parse private key %s: %w", cfg.HostName, file, err)
	}
	return s, nil
}
