// Package control is the control plane: typed tenant settings with defaults
// in code, overrides in PostgreSQL, versioned and audited, and pushed to
// every process within a second.
//
// # Pieces
//
//   - Registry: the keys (name, Type, Default, Min/Max, Doc, pluggable
//     Validate) and presets. NewRegistry holds the built-in ones
//     (builtin.go); other packages Define more, or install validators with
//     SetValidator (admission validates "admission.rules"), at start-up.
//   - Store: changes (Apply, ApplyPreset, RevertPreset) and reads
//     (Settings, History) in PostgreSQL.
//   - Watcher: the in-memory Snapshot every process reads, following the
//     store.
//   - API: the admin HTTP routes; `bulwark control` is their CLI.
//
// # Resolution
//
// The value of a key for a tenant is the tenant's override, else the global
// override (tenant "*"), else the default. A stored value that the running
// binary does not accept (unknown key, rejected value) is skipped, so a
// rolling deploy that adds or tightens a key never blocks other changes.
//
// # Versions and propagation
//
// Every change is one transaction that increments the single row of
// control_version (its row lock serialises writers, so versions follow
// commit order), writes overrides and audit rows, and NOTIFYs
// "bulwark_control" with the new version. A Watcher LISTENs on a dedicated
// connection and also polls the version every 500 ms; on a difference it
// reloads every override at one version (REPEATABLE READ) and swaps in a new
// immutable Snapshot. NOTIFY applies a change in milliseconds; the poll
// bounds the delay after a lost notification to one poll interval plus a
// reload. A full reload rather than a delta keeps the logic trivially
// correct; MaxOverrides bounds its size.
//
// # Failure
//
// If the store is unreachable the Watcher keeps its last snapshot (the last
// known good settings), retries with capped exponential backoff and jitter,
// and reports bulwark_control_store_up=0 and a growing
// bulwark_control_staleness_seconds. Writes fail with no partial effect.
//
// # Presets
//
// Applying a preset records, in the same transaction, the tenant's previous
// override of each key it touches (null for "unset"); reverting restores
// exactly that, even if the keys were changed meanwhile, and forgets the
// record. A preset cannot be applied twice without a revert in between,
// since the second application would overwrite the values to restore.
//
// # Concurrency
//
// Snapshot reads take no lock and do not allocate. Watcher.Run owns its
// goroutines and returns after they stop. OnChange callbacks run in version
// order on the goroutine that applied the snapshot; Snapshot.Superseded
// lets a blocked waiter (ratelimit) wake on any change without a callback.
package control
