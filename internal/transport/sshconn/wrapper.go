package sshconn

// The remote side of Exec. The command line sshd runs is always the same
// (remoteCommand); what varies travels on stdin as a header of three
// length-prefixed sections (environment, script, sudo password) followed
// by the caller's stdin:
//
//	<bytes>\n<env: export NAME='value' lines><bytes>\n<script><bytes>\n<password><0 or 1: become>\n
//
// The outer wrapper stores the environment and the script in a private
// temp directory (umask 077, removed at exit), keeps the password in a
// shell variable (given to sudo through a pipe by the printf builtin),
// prints execMarker on stdout once the command is about to start, then
// runs runner (directly, or as root through sudo). The runner starts the
// script with `sh -e` in its own session (setsid) so that a TERM — sent
// by Exec when its context is cancelled — kills the script's whole
// process group. Failures of the wrapper itself exit with
// wrapperFailed before the marker.

const (
	execMarker    = "\x00sealflow-exec\x00"
	wrapperFailed = 125
)

// runner is run as `sh -c runner sh DIR`. It holds no single quote:
// wrapper quotes it with single quotes.
const runner = `p=
stop() { [ -n "$p" ] && { kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; }; exit 143; }
trap stop TERM HUP INT
. "$1/env" || exit 125
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
for f in env script; do
	section
	if [ "$n" -gt 0 ]; then head -c "$n" >"$d/$f" || fail "short command header"; else : >"$d/$f"; fi
done
section; pw=
if [ "$n" -gt 0 ]; then pw=$(head -c "$n") || fail "short command header"; fi
IFS= read -r become || fail "short command header"
r='` + runner + `'
sudo=
if [ "$become" = 1 ] && [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "become: sudo is not installed on the host"
	if sudo -n -k true 2>/dev/null; then
		sudo=n
	elif [ -n "$pw" ]; then
		printf '%s\n' "$pw" | sudo -k -S -p '' -v 2>/dev/null || fail "become: sudo refused the password of user $(id -un)"
		sudo=S
	else
		fail "become: sudo asks user $(id -un) for a password and none is configured (set the host's password, or allow NOPASSWD)"
	fi
fi
printf '\000sealflow-exec\000'
exec 3<&0
case $sudo in
n) sudo -n sh -c "$r" sh "$d" <&3 3<&- & ;;
S) { printf '%s\n' "$pw"; exec cat; } <&3 3<&- | sudo -k -S -p '' sh -c "$r" sh "$d" & ;;
*) sh -c "$r" sh "$d" <&3 3<&- & ;;
esac
p=$!
pw=
wait "$p"
`

// remoteCommand is the only command line Exec asks sshd to run.
func remoteCommand() string {
	return "exec sh -c " + Quote(wrapper)
}
