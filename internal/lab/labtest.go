package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"time"
)

// TB is what ForTest needs of a test: testing.TB has it. lab does not
// import testing, so the sealflow binary (which links lab for `sealflow
// lab`) does not link it either.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// ForTest starts a lab for a test and removes it when the test ends (also
// when it fails). It skips the test, saying why, when the machine cannot
// run a lab (not root, no sshd, ...). The lab gets a unique name: cfg.Name
// (default "t") and a random suffix. cfg.Log defaults to t.Logf.
func ForTest(t TB, cfg Config) *Lab {
	t.Helper()
	if err := CheckMachine(cfg); err != nil {
		var need NeedError
		if errors.As(err, &need) {
			t.Skipf("no lab here: %v", err)
		}
		t.Fatalf("lab: %v", err)
	}
	prefix := cfg.Name
	if prefix == "" {
		prefix = "t"
	}
	if len(prefix) > maxLabName-9 {
		prefix = prefix[:maxLabName-9]
	}
	cfg.Name = prefix + "-" + randomSuffix()
	if cfg.Log == nil {
		cfg.Log = t.Logf
	}
	if cfg.Masters+cfg.Nodes == 0 {
		cfg.Masters = 1
	}
	name := cfg.Name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Down(ctx, name); err != nil {
			t.Errorf("remove lab: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := Up(ctx, cfg)
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	return l
}

// randomSuffix returns 8 random lower-case letters and digits.
func randomSuffix() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [8]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b[:])
}
