package transport

import "strings"

// Quote returns s as one word of a POSIX shell command line: inside
// single quotes, where nothing is special; each single quote inside
// becomes the four bytes quote, backslash, quote, quote.
// The shell cannot carry a NUL byte in a word; callers reject those.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
