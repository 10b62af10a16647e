// Package tile keeps velocity features as tiles: partial aggregates
// (State) per time bucket at four levels, 1s, 1m, 1h and 1d. Every event
// is added to its bucket at each level (Buckets); a window is answered by
// merging a bounded cover of buckets (Cover), whatever the event rate. It
// is pure: no I/O, no clock (callers pass now).
//
// # Exactness
//
// Let n be now truncated to a whole second and W the window in seconds.
// The window is the events whose time, truncated to a whole second, lies
// in (n−W, n]. Cover answers it exactly at the resolution R of the window:
//
//   - windows up to 1h: R = 1s, exact: the events with floor(t) in (n−W, n];
//   - windows up to 2d: R = 1m, exact to one minute at the tail: the start
//     n−W+1 is rounded down to a whole minute, so the answer also holds
//     the events of up to 59 s before the window;
//   - longer windows (up to 90d): R = 1h, exact to one hour at the tail:
//     the start is rounded down to a whole hour (up to 59 min 59 s more).
//
// The cover is never short of the window: at the tail it only ever adds,
// at most R − 1s of history. At the head it takes the bucket that holds
// now, which also holds any event stamped later than now within that
// bucket (clock skew); callers refuse events too far in the future.
//
// A cover has at most MaxCover buckets: the head bucket, then buckets of
// ever finer levels towards the tail (for 1h: ≤ 1 hour, 59 minutes and 59
// seconds; for 90d: ≤ 90 days and 23 hours).
//
// # Retention
//
// Level.Retention is how long each level's tiles are read: 1s tiles 1h,
// 1m tiles 2d, 1h and 1d tiles 91d (the longest window plus one bucket of
// the coarsest level). Expired says when a tile may be deleted, given the
// engine's allowed lateness (a late event must still find its tiles).
//
// # State
//
// One State serves every aggregation of one field: count, sum, min, max,
// avg, last and distinct_count (see State). Sums are exact (256-bit) and
// distinct counts are exact up to 256 values per state, then a
// HyperLogLog estimate (see State).
package tile
