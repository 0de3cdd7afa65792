// Package journal owns a run's state directory: the append-only journal of
// task transitions, the lock that keeps two runs out of one directory, the
// files a run was started with, and the key that protects secret outputs.
//
// # Layout
//
// A state directory (default DefaultDir, .sealflow/) holds:
//
//	plan.yaml, inventory.yaml, vars.json, run.json   the run's inputs (SaveRun / ReadRunFile)
//	journal                                          append-only records, one per line
//	lock                                             pid and start time of the run holding it
//	key                                              secret key, mode 0600 (absent when the key is passed in)
//	logs/STEP/HOST.log                               task output, written by the engine (LogPath)
//
// The directory and every file in it are created private (0700 / 0600).
// Discard forgets a run (journal, run files, logs) under the lock; the key
// stays. Other packages name no file of the directory but through this
// package.
//
// # Journal format
//
// Each record is one line: the CRC-32C (Castagnoli) of the JSON text as eight
// lower-case hex digits, a space, the JSON text of a Record, and '\n'.
// Appending is O(1): records are only ever appended, never rewritten.
//
// A crash can leave the last line incomplete (no '\n') or with a checksum
// that does not match. Such a last record is ignored by Replay and cut off
// before the next Append writes, so the journal always ends with a whole good
// record. A bad record followed by more data cannot come from a crash; it is
// reported as a *CorruptError naming its byte offset, and the journal is not
// written to any more.
//
// # Durability and group commit
//
// Append returns once its record is on disk (written and fsynced). Appends
// from many goroutines are queued to one writer goroutine that writes
// everything queued as one batch and fsyncs once, so concurrent appends share
// the cost of an fsync instead of paying one each.
//
// # Lock
//
// Open takes an exclusive, non-blocking flock on the lock file and keeps its
// descriptor open for the State's life; the kernel releases it when the
// process ends, however it ends. A lock file whose flock nobody holds (left
// by a killed run) is stale and taken over, with a message through
// Options.Log. flock belongs to the open file description, so a second Open
// of the same directory in the same process is refused just like one from
// another process.
//
// # Secrets
//
// Threat model: whoever can read the state directory (a backup, a copied
// laptop folder, a support bundle) must not learn secret step outputs
// (bootstrap tokens, certificate keys, passwords) from the journal.
//
// Secret outputs (Record.Secrets) are encrypted by Append with AES-256-GCM
// under the state key, each value with its own random nonce and bound to its
// step, host and name (a value copied to another place does not decrypt);
// they are stored base64-encoded. Replay decrypts them, so callers only ever
// see clear values, and clear text never reaches the disk.
//
// The key is 32 random bytes. By default it is kept, base64-encoded, in the
// key file of the state directory, created with mode 0600: that file is as
// sensitive as an SSH private key, because together with the journal it
// reveals every secret. To keep the key off the disk, the caller passes it in
// Options.Key (the CLI reads it from SEALFLOW_STATE_KEY); then no key file is
// written and the same key must be given to resume. A wrong key is reported
// as such by Replay, never as garbage values. A read-only Reader without the
// key (no key file, none given) returns secret outputs by name with empty
// values.
//
// Non-secret outputs, the journal's structure (steps, hosts, times, errors)
// and the run files are stored in clear; anything sensitive must be declared
// secret by the step that produces it.
package journal
