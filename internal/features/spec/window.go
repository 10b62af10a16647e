package spec

import (
	"fmt"
	"strconv"
	"time"
)

// Window is the length of a feature window: a whole number of minutes
// from MinWindow to MaxWindow.
type Window time.Duration

// The range of windows.
const (
	MinWindow = Window(time.Minute)
	MaxWindow = Window(90 * 24 * time.Hour)
)

// maxWindowText bounds the text ParseWindow reads ("129600m" is the
// longest valid spelling: 7 bytes).
const maxWindowText = 16

// ParseWindow parses a positive whole number followed by m, h or d
// ("10m", "1h", "7d"). The result must lie in [MinWindow, MaxWindow]. The
// error is a *problem.DecodeError with code window_out_of_range.
func ParseWindow(s string) (Window, error) {
	if len(s) < 2 || len(s) > maxWindowText {
		return 0, windowError(s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	default:
		return 0, windowError(s)
	}
	digits := s[:len(s)-1]
	if digits[0] < '1' || digits[0] > '9' {
		return 0, windowError(s) // no sign, no leading zero
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n > uint64(MaxWindow)/uint64(unit) {
		return 0, windowError(s)
	}
	w := Window(time.Duration(n) * unit)
	if w < MinWindow || w > MaxWindow {
		return 0, windowError(s)
	}
	return w, nil
}

func windowError(s string) error {
	return invalid(codeWindowOutOfRange, "", "window %s: want a whole number of minutes from 1m to 90d, as 10m, 2h or 7d", quoteShort(s))
}

// String returns the shortest exact spelling: "90d", "2h", "10m".
func (w Window) String() string {
	d := time.Duration(w)
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return fmt.Sprintf("invalid(%s)", d)
}

// Duration returns w as a time.Duration.
func (w Window) Duration() time.Duration { return time.Duration(w) }

// MarshalText encodes w as String does.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText parses text as ParseWindow does.
func (w *Window) UnmarshalText(text []byte) error {
	v, err := ParseWindow(string(text))
	if err != nil {
		return err
	}
	*w = v
	return nil
}
