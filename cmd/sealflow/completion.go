package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
)

// completionFlag is what urfave/cli answers with the words that may come
// next (commands, or flags after a word starting with "-").
const completionFlag = "--generate-bash-completion"

// The scripts ask the binary being completed (the command line's first
// word, as typed) for the candidates of the word under the cursor; when it
// names none (a PLAN or FILE argument), file names are completed.
const bashCompletion = `# bash completion for sealflow: source <(sealflow completion bash)
_sealflow() {
	local cur=${COMP_WORDS[COMP_CWORD]} words
	if [[ $cur == -* ]]; then
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" ` + completionFlag + ` 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" ` + completionFlag + ` 2>/dev/null)
	fi
	COMPREPLY=()
	local w
	while IFS= read -r w; do
		[[ -n $w && $w == "$cur"* ]] && COMPREPLY+=("$w")
	done <<<"$words"
	if [[ ${#COMPREPLY[@]} -eq 0 ]]; then
		while IFS= read -r w; do COMPREPLY+=("$w"); done < <(compgen -f -- "$cur")
	fi
	return 0
}
complete -o filenames -F _sealflow sealflow
`

const zshCompletion = `#compdef sealflow
# zsh completion for sealflow: source <(sealflow completion zsh) after compinit,
# or save it as _sealflow in a directory of $fpath.
_sealflow() {
	local cur=${words[CURRENT]}
	local -a cands
	if [[ $cur == -* ]]; then
		cands=("${(@f)$(${words[1,CURRENT-1]} "$cur" ` + completionFlag + ` 2>/dev/null)}")
	else
		cands=("${(@f)$(${words[1,CURRENT-1]} ` + completionFlag + ` 2>/dev/null)}")
	fi
	cands=(${cands:#})
	if (( ${#cands} )); then
		compadd -a cands
	else
		_files
	fi
}
if [[ $funcstack[1] == _sealflow ]]; then
	_sealflow "$@"
else
	compdef _sealflow sealflow
fi
`

func completionCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(sealflow completion bash)",
		ArgsUsage: "bash|zsh",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return app.Invalidf("completion needs the shell: bash or zsh (got %d arguments)", c.NArg())
			}
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(streams.Stdout, bashCompletion)
			case "zsh":
				fmt.Fprint(streams.Stdout, zshCompletion)
			default:
				return app.Invalidf("completion %q: want bash or zsh", c.Args().First())
			}
			return nil
		},
	}
}
