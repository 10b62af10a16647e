package tile

import (
	"fmt"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// Level is a tile size.
type Level uint8

// The levels, finest first.
const (
	Second Level = iota
	Minute
	Hour
	Day
)

// Levels is the number of levels.
const Levels = 4

var levelSeconds = [Levels]int64{1, 60, 3600, 86400}

// Size returns the level's bucket length.
func (l Level) Size() time.Duration { return time.Duration(levelSeconds[l]) * time.Second }

// Seconds returns the level's bucket length in seconds.
func (l Level) Seconds() int64 { return levelSeconds[l] }

// Retention returns how far back from now a cover reads the level's tiles
// (bucket ends older than that are never read): 1s tiles serve the tail of
// windows up to 1h, 1m tiles windows up to 2d, 1h and 1d tiles windows up
// to 90d, whose start is rounded down by up to an hour (a day of margin).
func (l Level) Retention() time.Duration {
	switch l {
	case Second:
		return time.Hour
	case Minute:
		return 48 * time.Hour
	}
	return time.Duration(spec.MaxWindow) + 24*time.Hour
}

func (l Level) String() string {
	switch l {
	case Second:
		return "1s"
	case Minute:
		return "1m"
	case Hour:
		return "1h"
	case Day:
		return "1d"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// Bucket is one tile's time bucket: a level and the bucket's start in
// unix seconds, a multiple of the level's size.
type Bucket struct {
	Level Level
	Start int64
}

// End returns the bucket's end (exclusive) in unix seconds.
func (b Bucket) End() int64 { return b.Start + b.Level.Seconds() }

func (b Bucket) String() string {
	return b.Level.String() + "@" + time.Unix(b.Start, 0).UTC().Format(time.RFC3339)
}

// floorTo returns s rounded down to a multiple of size (also for s < 0).
func floorTo(s, size int64) int64 {
	r := s % size
	if r < 0 {
		r += size
	}
	return s - r
}

// Buckets returns the bucket of t at each level, indexed by Level.
func Buckets(t time.Time) [Levels]Bucket {
	s := t.Unix() // floor: Unix's nanoseconds part is always non-negative
	var out [Levels]Bucket
	for l := Second; l <= Day; l++ {
		out[l] = Bucket{Level: l, Start: floorTo(s, levelSeconds[l])}
	}
	return out
}

// Resolution returns the finest level a cover of w uses: 1s for windows up
// to 1h, 1m up to 2d, 1h beyond (see the package doc).
func Resolution(w spec.Window) Level {
	switch {
	case w <= spec.Window(time.Hour):
		return Second
	case w <= spec.Window(48*time.Hour):
		return Minute
	}
	return Hour
}

// maxCover is the longest cover: a window of at most 1h whose head is a
// day or hour bucket, then ≤ 1 hour, 59 minutes and 59 seconds (windows
// up to 2d: 1 + 2 + 23 + 59 = 85; up to 90d: 1 + 90 + 23 = 114).
const maxCover = 1 + 1 + 59 + 59

// MaxCover returns the most buckets Cover returns.
func MaxCover() int { return maxCover }

// Span returns the range of seconds [lo, hi] a cover of w at now answers
// (see the package doc): hi is now truncated to a second, lo is hi−W+1
// rounded down to the window's resolution.
func Span(now time.Time, w spec.Window) (lo, hi int64) {
	hi = now.Unix()
	size := levelSeconds[Resolution(w)]
	return floorTo(hi-int64(time.Duration(w)/time.Second)+1, size), hi
}

// Cover returns the buckets whose tiles merged answer the window w at now:
// disjoint, newest first, their union the seconds of Span(now, w) (the
// head bucket may extend past now). It returns at most MaxCover buckets;
// w must be valid (spec.MinWindow..spec.MaxWindow).
func Cover(now time.Time, w spec.Window) []Bucket {
	return AppendCover(make([]Bucket, 0, maxCover), now, w)
}

// AppendCover is Cover appending to dst (no allocation when dst has room).
func AppendCover(dst []Bucket, now time.Time, w spec.Window) []Bucket {
	lo, pos := Span(now, w)
	res := Resolution(w)
	first := true
	for pos >= lo {
		// The coarsest bucket that ends right after pos (any bucket
		// holding pos, for the head) and starts inside the window. The
		// resolution level always qualifies: lo and pos+1 are multiples
		// of its size.
		for l := Day; ; l-- {
			start := floorTo(pos, levelSeconds[l])
			if start >= lo && (first || start+levelSeconds[l] == pos+1) || l == res {
				dst = append(dst, Bucket{Level: l, Start: start})
				pos = start - 1
				break
			}
		}
		first = false
	}
	return dst
}

// Expired reports whether the tile of b may be deleted at now: no cover
// reads it any more and a late event (at most lateness old) can no longer
// land in it.
func Expired(b Bucket, now time.Time, lateness time.Duration) bool {
	horizon := now.Add(-b.Level.Retention() - lateness).Unix()
	return b.End() <= horizon
}
