package sshconn

import "github.com/sealflow/sealflow/internal/transport"

// Quote returns s as one word of a POSIX shell command line
// (transport.Quote).
func Quote(s string) string { return transport.Quote(s) }
