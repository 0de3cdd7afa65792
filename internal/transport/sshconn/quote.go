package sshconn

import "strings"

// Quote returns s as one word of a POSIX shell command line: inside
// single quotes, where nothing is special, with each ' written as '\''.
// The shell cannot carry a NUL byte in a word; callers reject those.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
