package sshconn

import (
	"os/exec"
	"strings"
	"testing"
)

// printfQuoted has the real sh print Quote(s) back.
func printfQuoted(t *testing.T, s string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "printf %s "+Quote(s)).Output()
	if err != nil {
		t.Fatalf("sh -c printf %%s %s: %v", Quote(s), err)
	}
	return string(out)
}

var hostile = []string{
	"",
	" ",
	"plain",
	"it's",
	"''",
	`'\''`,
	"$(touch /tmp/sealflow-quote-pwned)",
	"`id`",
	"a; rm -rf /tmp/nothing-here",
	"line1\nline2\n",
	"tab\there",
	`back\slash \n \\`,
	`"double" "quotes"`,
	"${HOME} $HOME $1 $@ $* $$ $?",
	"glob * ? [a-z]",
	"-n",
	"%s %d %%",
	"ünïcödé ✓ 日本語",
	"\x01\x7f\xff",
	"&& || | > < >> 2>&1 &",
	"#comment",
	"~root",
}

func TestQuote(t *testing.T) {
	t.Parallel()
	for _, s := range hostile {
		if got := printfQuoted(t, s); got != s {
			t.Errorf("sh printed %q for Quote(%q) = %s", got, s, Quote(s))
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("a shell word cannot hold a NUL byte")
		}
		if got := printfQuoted(t, s); got != s {
			t.Errorf("sh printed %q for Quote(%q) = %s", got, s, Quote(s))
		}
	})
}
