package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// completeEnv returns a directory holding plan.yaml and an environment
// whose PATH finds this sealflow first.
func completeEnv(t *testing.T) (string, []string) {
	bin := sealflowBin(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "plan.yaml"), "name: p\n")
	return dir, append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
}

// TestBashCompletion sources `sealflow completion bash` in bash and asks
// it what completes a few command lines, as bash does on Tab.
func TestBashCompletion(t *testing.T) {
	t.Parallel()
	dir, env := completeEnv(t)
	for _, tc := range []struct {
		line []string // the words; the last is the one being completed
		want []string
	}{
		{[]string{"sealflow", "re"}, []string{"resume", "report"}},
		{[]string{"sealflow", "l"}, []string{"lab", "lvscare"}},
		{[]string{"sealflow", "lab", ""}, []string{"up", "down", "exec", "ls", "egress"}},
		{[]string{"sealflow", "run", "--out"}, []string{"--output"}},
		{[]string{"sealflow", "completion", ""}, nil},
		{[]string{"sealflow", "run", "pl"}, []string{"plan.yaml"}}, // a PLAN: file names
	} {
		var words []string
		for _, w := range tc.line {
			words = append(words, shellQuote(w))
		}
		script := `source <(sealflow completion bash) || exit 9
complete -p sealflow >/dev/null || exit 8
COMP_WORDS=(` + strings.Join(words, " ") + `); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_sealflow
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", tc.line, err, out)
		}
		got := strings.Fields(string(out))
		if tc.want == nil {
			// Nothing to offer but files: the directory's.
			tc.want = []string{"plan.yaml"}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("completing %q (-want +got):\n%s", tc.line, diff)
		}
	}
}

// TestZshCompletion loads `sealflow completion zsh` into zsh's completion
// system and runs its function with compadd (a stand-in: zsh's needs a
// terminal) printing what it is offered.
func TestZshCompletion(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Fatal("zsh is not installed (testdata/ci/deps.sh installs it: apt-get install zsh)")
	}
	dir, env := completeEnv(t)
	for _, tc := range []struct {
		words, want string
	}{
		{"sealflow re", "resume report"},
		{"sealflow lab ''", "up down exec ls egress"},
		{"sealflow run --ou", "--output"},
	} {
		script := `autoload -U compinit && compinit -u -D
source <(sealflow completion zsh) || exit 9
[[ ${_comps[sealflow]} == _sealflow ]] || { print "not registered: ${_comps[sealflow]}"; exit 8 }
# compadd offers the candidates that start with the word typed, as zsh's does.
compadd() { [[ $1 == -a ]] && print -rl -- ${(M)${(P)2}:#${words[CURRENT]}*} }
_files() { print FILES }
words=(` + tc.words + `); CURRENT=${#words}
_sealflow`
		cmd := exec.Command("zsh", "-f", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.words, err, out)
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != tc.want {
			t.Errorf("completing %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestCompletionBadShell(t *testing.T) {
	t.Parallel()
	bin := sealflowBin(t)
	for _, args := range [][]string{{"completion", "fish"}, {"completion"}, {"completion", "bash", "zsh"}} {
		stdout, stderr, code := sf(t, bin, t.TempDir(), "", args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "bash or zsh") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and the shells", args, code, stdout, stderr)
		}
	}
}
