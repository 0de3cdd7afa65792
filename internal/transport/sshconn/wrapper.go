package sshconn

// The remote side of Exec. The command line sshd runs is always the same
// (bootstrap: the wrapper). Everything that varies comes on stdin, as
// two length-prefixed sections (the script, led by the environment's
// export lines; the sudo password) and a become flag, then the caller's
// stdin:
//
//	<bytes>\n<export NAME='value' lines><script><bytes>\n<password>1\n
//
// The wrapper stores the script in a private temp
// directory (umask 077, removed at exit) and keeps the password in a
// shell variable (given to sudo through a pipe by the printf builtin). It
// prints execMarker, its PID and a NUL on stdout once the command is about
// to start, then runs runner (directly, or as root through sudo). The
// runner starts the script with `sh -e` in its own session (setsid) so
// that a TERM to the wrapper — sent by Exec when its context is
// cancelled — kills the script's whole process group. When the wrapper
// itself fails it says why on stderr and exits with wrapperFailed before
// the marker.

const (
	execMarker    = "\x00sealflow-exec " // then the wrapper's PID and a NUL
	wrapperFailed = 125
)

// runner is run as `sh -c runner sh DIR`. It holds no single quote:
// wrapper quotes it with single quotes.
const runner = `p=
stop() { [ -n "$p" ] && { kill -TERM "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; }; exit 143; }
trap stop TERM HUP INT
SEALFLOW_TMP=$1
export SEALFLOW_TMP
exec 3<&0
if command -v setsid >/dev/null 2>&1; then
	setsid sh -e "$1/script" <&3 3<&- &
else
	sh -e "$1/script" <&3 3<&- &
fi
p=$!
wait "$p"
`

const wrapper = `umask 077
fail() { printf 'sealflow: %s\n' "$1" >&2; exit 125; }
section() {
	IFS= read -r n || fail "short command header"
	case $n in ''|*[!0-9]*) fail "bad command header";; esac
}
d=$(mktemp -d "${TMPDIR:-/tmp}/sealflow.XXXXXXXX") || fail "cannot create a private temp directory"
p=
trap 'rm -rf "$d"' EXIT
trap '[ -n "$p" ] && { kill -TERM "$p" 2>/dev/null; wait "$p"; }; exit 143' TERM HUP INT
section
if [ "$n" -gt 0 ]; then head -c "$n" >"$d/script" || fail "short command header"; else : >"$d/script"; fi
section; pw=
if [ "$n" -gt 0 ]; then pw=$(head -c "$n") || fail "short command header"; fi
IFS= read -r become || fail "short command header"
r='` + runner + `'
sudo=
if [ "$become" = 1 ] && [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "become: sudo is not installed on the host"
	tty="; sudo needs a terminal (Defaults requiretty): add 'Defaults:$(id -un) !requiretty' to the host's sudoers"
	if e=$(sudo -n -k true 2>&1); then
		sudo=n
	elif case $e in *tty*|*terminal*) true;; *) false;; esac; then
		fail "become: sudo said: $e$tty"
	elif [ -n "$pw" ]; then
		e=$(printf '%s\n' "$pw" | sudo -k -S -p '' -v 2>&1) || {
			case $e in *tty*|*terminal*) fail "become: sudo said: $e$tty";; esac
			fail "become: sudo refused the password of user $(id -un)${e:+ (sudo said: $e)}"
		}
		sudo=S
	else
		fail "become: sudo asks user $(id -un) for a password and none is configured (set the host's password, or allow NOPASSWD)"
	fi
fi
printf '\000sealflow-exec %s\000' "$$"
exec 3<&0
case $sudo in
n) sudo -n sh -c "$r" sh "$d" <&3 3<&- & ;;
S) { printf '%s\n' "$pw"; exec cat; } <&3 3<&- | sudo -k -S -p '' sh -c "$r" sh "$d" & ;;
*) (set -- "$d"; eval "$r") <&3 3<&- & ;;
esac
p=$!
pw=
wait "$p"
`

// bootstrap is the only command line Exec asks sshd to run: the wrapper
// itself, a constant, so that nothing that varies is ever on it.
var bootstrap = "exec sh -c " + Quote(wrapper)
