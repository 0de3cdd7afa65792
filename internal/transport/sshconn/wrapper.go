package sshconn

import "time"

// The remote side of Exec. The command line sshd runs is always the same
// (bootstrap: the wrapper). Everything that varies comes on stdin, as a
// header the wrapper reads with shell builtins, then the caller's stdin:
//
//	<become> <tmp> <mode> <watch> <input>\n
//	<end line>\n                 (mode l; mode b: the section's size in bytes)
//	<export NAME='value' lines><script>
//	<end line>\n                 (mode l only)
//	<sudo password>\n
//	<input bytes>                 (only when <input> is a size, not "-")
//
// <input> is "-" when the caller's stdin streams on after the header, or
// the size of the caller's whole stdin, sent next: on a terminal
// (Config.TTY) there is no end of input, so the wrapper stores that many
// bytes in its private directory (with head) and gives the file to the
// script as stdin.
//
// Mode l (a script section of up to inlineMax bytes) frames the section
// by lines up to an end line that it does not hold, so that `read` takes
// it into a shell variable; mode b (larger sections) gives its size and
// the wrapper stores it in a file with head. Mode r makes the wrapper the
// connection's runner (resident.go), the end line its token.
//
// The fast path, for a command that is not run through sudo: the wrapper
// prints execMarker, "-", its PID and a NUL on stdout, then evaluates the
// script in its own process with errexit. sshd starts every session in a
// session of its own (setsid), so the wrapper's PID is also the process
// group of the script and of everything it starts: Exec, when its context
// is cancelled, sends TERM to that group. Only when the script names
// $SEALFLOW_TMP does the wrapper create the private directory (mktemp -d,
// mode 0700); it then runs the script in a subshell and removes the
// directory (rm -rf) when that ends. The wrapper knows it leads its
// process group when `kill -0 -$$` succeeds: a group's ID is the PID of
// the process that made it, and Linux does not give a PID still in use
// as a group's ID to another process. Programs started on the host per
// command: the login shell and the wrapper's sh; with $SEALFLOW_TMP also
// mktemp and rm.
//
// The slow path, for become as a non-root user, for scripts above
// inlineMax and where the wrapper is not its process group's leader: the
// script is stored in a private temp directory, and runner starts it with
// `sh -e` in its own session (setsid), directly or as root through sudo
// (the password given to sudo through a pipe by the printf builtin). The
// marker then holds the wrapper's PID without "-": Exec sends TERM to the
// wrapper, whose trap passes it on to the script's process group.
//
// Both paths run the script with umask 077. When the wrapper itself fails
// it says why on stderr and exits with wrapperFailed before the marker.
//
// The watchdog (watch 1: the caller gives no stdin). A command must die
// with its session: sshd killed, or a link cut so that no packet arrives
// any more, must not leave it running to finish work whose outcome the
// client can no longer learn. The client then sends a heartbeat line on
// stdin every heartbeatEvery and keeps stdin open until the command ends;
// the script reads /dev/null. The wrapper starts a watcher (a forked
// subshell, no program) that reads the heartbeats with the read builtin.
// End of input while the wrapper lives means the session is gone; from
// the first heartbeat on, a timer (one `sleep` every watchdogTick, started
// by the first heartbeat, so a command of less than heartbeatEvery starts
// no program for it; it waits for its sleep with the wait builtin, so that
// when the watcher stops it the sleep goes too: nothing of the task is left
// on the host) interrupts the read, and a tick with no heartbeat
// since the last one means the link is dead. Either way the watcher sends
// TERM to the script's process group (fast path) or to the wrapper (slow
// path, whose trap passes it on), and KILL to the group killGraceRemote
// seconds later. On the fast path the script runs in the wrapper itself
// (no subshell): when it ends, sshd closes the watcher's input, and the
// watcher, finding the wrapper gone, stops its timer and exits. A command
// with stdin of its own has no watchdog: its script reads that input.
//
// runner, when told to stop, sends TERM to the script's process group and,
// killGraceRemote seconds later, KILL to what is left of it: a script
// that ignores TERM is ended all the same, also as root under sudo.

const (
	// heartbeatEvery is how often the client sends a heartbeat to the
	// watchdog; watchdogTick (a multiple, in seconds) is how long the
	// watchdog waits for one before it takes the link for dead.
	heartbeatEvery = time.Second
	watchdogTick   = "5"
	// killGraceRemote is the seconds a script has, on the host, between
	// TERM and KILL.
	killGraceRemote = "5"
	execMarker      = "\x00sealflow-exec " // then "-" and the process group, or the wrapper's PID; then a NUL
	wrapperFailed   = 125
	// inlineMax is the largest script section (environment and script)
	// sent in mode l: `read` takes one byte per system call, and the
	// section is put together line by line.
	inlineMax = 32 << 10
)

// runner is run as `sh -c runner sh DIR`. It holds no single quote:
// wrapper quotes it with single quotes.
const runner = `p=
stop() {
	[ -n "$p" ] || exit 143
	if kill -TERM "-$p" 2>/dev/null; then
		(trap "" TERM HUP INT; sleep ` + killGraceRemote + `; kill -KILL "-$p" 2>/dev/null) </dev/null >/dev/null 2>&1 &
	else
		kill -TERM "$p" 2>/dev/null
	fi
	exit 143
}
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

// wrapper's own names start with _sf; they are unset before the script
// runs.
const wrapper = `umask 077
_sff() { printf 'sealflow: %s\n' "$1" >&2; exit 125; }
IFS=' ' read -r _sfb _sft _sfm _sfw _sfI || _sff "short command header"
IFS= read -r _sfn || _sff "short command header"
_sfs= _sfd= _sfp= _sfg= _sfW=
_sfwatch() {
	trap - EXIT
	_sfh=0 _sfi= _sfk= _sfme=
	trap '[ -n "$_sfk" ] && kill "$_sfk" 2>/dev/null; exit 0' TERM
	trap '_sfi=1; [ "$_sfh" = 0 ] && _sflost "$1"; _sfh=0' USR1
	while :; do
		_sfi=
		if IFS= read -r _sfl; then
			_sfh=1
			[ -n "$_sfk" ] || [ "$_sfme" = - ] || {
				read -r _sfme _sfl </proc/self/stat 2>/dev/null || { _sfme=-; continue; }
				(_sfz=; trap '[ -n "$_sfz" ] && kill "$_sfz" 2>/dev/null; exit 0' TERM
				while :; do sleep ` + watchdogTick + ` & _sfz=$!; wait "$_sfz" || exit 0; kill -USR1 "$_sfme" 2>/dev/null || exit 0; done) </dev/null >/dev/null 2>&1 &
				_sfk=$!
			}
			continue
		fi
		[ -n "$_sfi" ] && continue
		break
	done
	_sflost "$1"
}
_sflost() {
	kill -0 "$$" 2>/dev/null || { [ -n "$_sfk" ] && kill "$_sfk" 2>/dev/null; exit 0; }
	trap '' TERM HUP INT USR1
	[ -n "$_sfk" ] && kill "$_sfk" 2>/dev/null
	kill -TERM "$1" 2>/dev/null || exit 0
	case $1 in -*) sleep ` + killGraceRemote + `; kill -KILL "$1" 2>/dev/null;; esac
	exit 0
}
_sftmp() {
	_sfd=$(mktemp -d "${TMPDIR:-/tmp}/sealflow.XXXXXXXX") || _sff "cannot create a private temp directory"
	trap 'rm -rf "$_sfd"' EXIT
}
` + residentShell + `
case $_sfm in
r) _sfrun;;
l)
	_sfl=
	while IFS= read -r _sfl; do
		[ "$_sfl" = "$_sfn" ] && break
		_sfs=$_sfs$_sfl'
'
	done
	[ "$_sfl" = "$_sfn" ] || _sff "short command header"
	;;
b)
	case $_sfn in ''|*[!0-9]*) _sff "bad command header";; esac
	_sftmp
	if [ "$_sfn" -gt 0 ]; then head -c "$_sfn" >"$_sfd/script" || _sff "short command header"; else : >"$_sfd/script"; fi
	;;
*) _sff "bad command header";;
esac
IFS= read -r _sfp || _sff "short command header"
case $_sfI in
-|'') ;;
*[!0-9]*) _sff "bad command header";;
*)
	[ -n "$_sfd" ] || _sftmp
	if [ "$_sfI" -gt 0 ]; then head -c "$_sfI" >"$_sfd/stdin" || _sff "short command input"; else : >"$_sfd/stdin"; fi
	exec <"$_sfd/stdin"
	;;
esac
if [ "$_sfm" = l ] && { [ "$_sfb" != 1 ] || [ "$(id -u)" = 0 ]; } && kill -0 "-$$" 2>/dev/null; then
	_sfg=$$
fi
if [ -n "$_sfg" ]; then
	_sfp=
	if [ "$_sfw" = 1 ]; then
		exec 3<&0
		_sfwatch "-$$" <&3 3<&- >/dev/null 2>&1 &
		_sfW=$!
		exec </dev/null 3<&-
	fi
	if [ "$_sft" = 1 ]; then
		[ -n "$_sfd" ] || _sftmp
		trap '[ -n "$_sfW" ] && kill "$_sfW" 2>/dev/null; exit 143' TERM HUP INT
		SEALFLOW_TMP=$_sfd
		export SEALFLOW_TMP
	fi
	printf '\000sealflow-exec -%s\000' "$$"
	if [ "$_sft" = 1 ]; then
		(eval "trap - EXIT TERM HUP INT; unset -v _sfb _sft _sfm _sfn _sfs _sfd _sfp _sfg _sfl _sfw _sfW _sfI; unset -f _sff _sftmp _sfwatch _sflost; set -e
$_sfs")
		_sfr=$?
		[ -n "$_sfW" ] && kill "$_sfW" 2>/dev/null
		exit "$_sfr"
	fi
	eval "unset -v _sfb _sft _sfm _sfn _sfs _sfd _sfp _sfg _sfl _sfw _sfW _sfI; unset -f _sff _sftmp _sfwatch _sflost; set -e
$_sfs"
	exit
fi
[ "$_sfm" = b ] || { [ -n "$_sfd" ] || _sftmp; printf '%s' "$_sfs" >"$_sfd/script" || _sff "cannot store the script"; }
_sfs=
p=
trap '[ -n "$p" ] && { kill -TERM "$p" 2>/dev/null; wait "$p"; }; [ -n "$_sfW" ] && kill "$_sfW" 2>/dev/null; exit 143' TERM HUP INT
r='` + runner + `'
sudo=
if [ "$_sfb" = 1 ] && [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || _sff "become: sudo is not installed on the host"
	_sfy="; sudo needs a terminal (Defaults requiretty): set 'tty: true' for the host in the inventory (sealflow then asks for a terminal), or add 'Defaults:$(id -un) !requiretty' to the host's sudoers"
	if _sfe=$(sudo -n -k true 2>&1); then
		sudo=n
	elif case $_sfe in *tty*|*terminal*) true;; *) false;; esac; then
		_sff "become: sudo said: $_sfe$_sfy"
	elif [ -n "$_sfp" ]; then
		_sfe=$(printf '%s
' "$_sfp" | sudo -k -S -p '' -v 2>&1) || {
			case $_sfe in *tty*|*terminal*) _sff "become: sudo said: $_sfe$_sfy";; esac
			_sff "become: sudo refused the password of user $(id -un)${_sfe:+ (sudo said: $_sfe)}"
		}
		sudo=S
	else
		_sff "become: sudo asks user $(id -un) for a password and none is configured (set the host's password, or allow NOPASSWD)"
	fi
fi
printf '\000sealflow-exec %s\000' "$$"
exec 3<&0
if [ "$_sfw" = 1 ]; then
	_sfwatch "$$" <&3 3<&- >/dev/null 2>&1 &
	_sfW=$!
	exec 3</dev/null
fi
case $sudo in
n) sudo -n sh -c "$r" sh "$_sfd" <&3 3<&- & ;;
S) { printf '%s\n' "$_sfp"; exec cat; } <&3 3<&- | sudo -k -S -p '' sh -c "$r" sh "$_sfd" & ;;
*) (set -- "$_sfd"; eval "$r") <&3 3<&- & ;;
esac
p=$!
_sfp=
wait "$p"
_sfr=$?
[ -n "$_sfW" ] && kill "$_sfW" 2>/dev/null
exit "$_sfr"
`

// bootstrap is the only command line Exec asks sshd to run: the wrapper
// itself, a constant, so that nothing that varies is ever on it.
var bootstrap = "exec sh -c " + Quote(wrapper)
