// Package pgoutput decodes the messages of PostgreSQL's pgoutput logical
// decoding plugin, protocol version 2 (streaming of in-progress
// transactions), and the text-format column values they carry.
//
// The decoder is pure: Parse turns one XLogData payload into one Message and
// never blocks or allocates beyond the message itself. A Decoder adds the one
// piece of state the wire format needs (whether a Stream Start is open, which
// decides whether change messages carry a transaction id) and a relation
// cache so that tuples can be turned into named, typed columns.
//
// Bad input is an error, never a panic: every length is checked against the
// remaining bytes (the package is fuzzed), and a tuple may not announce more
// than MaxColumns columns (PostgreSQL's own limit is 1,664).
package pgoutput
