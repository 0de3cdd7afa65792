// Package relay is the host side of distribute's relay mode: an agent that
// receives a file, verifies it chunk by chunk against a manifest the
// control machine computed, writes it to disk and serves what it has
// verified to the next host, so that the control machine sends the file
// once whatever the number of hosts.
//
// The agent (cmd/sealflow-relay) is started over SSH, one per host and
// file, and speaks on its stdin and stdout with the control machine; it
// imports nothing but the standard library, so that it stays small.
//
// Control machine to agent (stdin), lines:
//
//	token HEX          the run's secret for links between hosts
//	dest QUOTED        the file's absolute path (strconv.Quote)
//	mode OCTAL         its permission bits
//	listen HOST PORT   where to accept the next hosts (PORT 0: any)
//	manifest SIZE CHUNK WHOLE SUMS
//	                   the file's size, chunk size, hex sha256 and the
//	                   hex sha256 of every chunk, concatenated
//	go                 end of the configuration
//	from -             the source is stdin: the agent answers `want N`
//	                   and the control machine sends `data LEN` frames
//	                   (LEN bytes follow the line) from byte N on
//	from HOST:PORT     pull from another host's agent
//	ping               keeps the watchdog quiet
//	quit               exit (end of input too)
//
// Agent to control machine (stdout), lines:
//
//	have N             bytes verified on disk before this run
//	listen PORT        the port it accepts hosts on
//	want N             the source is stdin: send from byte N
//	got N              bytes verified so far
//	done WHOLE         the file is complete, fsynced and renamed
//	lost connect|stream REASON
//	                   the source failed; the agent waits for a new `from`
//	served PEER OFFSET BYTES
//	                   a host it served went away (BYTES sent to it)
//	note TEXT          something for the task's log
//	fail REASON        the agent cannot go on; it exits non-zero
//
// Between agents (TCP): the server sends "SFR1" and a 32-byte nonce; the
// client answers HMAC-SHA256(token, nonce) and the 8-byte big-endian
// offset it wants; the server then sends frames (4-byte big-endian length,
// then the bytes; length 0 is a keepalive sent every keepaliveEvery when
// it has nothing new) of verified bytes only, from that offset to the end.
// A frame's bytes are checked by the client against the manifest before
// they are written or forwarded: a host never passes on a byte the
// control machine did not vouch for.
//
// The agent exits when its input ends (its SSH session is gone), on
// `quit`, or when nothing came on stdin for watchdogAfter: nothing listens
// after a run.
package relay
