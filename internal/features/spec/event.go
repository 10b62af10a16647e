package spec

import (
	"bytes"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

// Limits of an event, so that one event costs a bounded amount of memory
// and work in every feature it feeds.
const (
	// MaxEventsPerBatch bounds {"events": [...]}.
	MaxEventsPerBatch = 1000
	// MaxEventIDBytes bounds an event id (client-chosen, used to count an
	// event once).
	MaxEventIDBytes = 200
	// MaxEventFields bounds an event's fields.
	MaxEventFields = 64
	// MaxStringBytes bounds a string field value (entity keys, devices,
	// IPs, merchant names fit with room to spare).
	MaxStringBytes = 1024
)

// The range of event times: from the Unix epoch (tile buckets count
// seconds from it) to 2200, well inside int64 nanoseconds (which end in
// 2262), so every time orders exactly as UnixNano.
const (
	// MinEventUnix is the earliest event time, 1970-01-01T00:00:00Z.
	MinEventUnix = 0
	// MaxEventUnix is the first time after the range, 2200-01-01T00:00:00Z.
	MaxEventUnix = 7_258_118_400
)

// Event is one event a feature counts: a tenant event, or one ledger entry
// (see LedgerFields).
type Event struct {
	// ID is the client's event id, 1..MaxEventIDBytes bytes without NUL;
	// the same id is counted once.
	ID string
	// Time is when the event happened (RFC 3339 in JSON; decoded in UTC;
	// within [MinEventUnix, MaxEventUnix) seconds).
	Time time.Time
	// Fields are the event's flat fields. The event's id and time are not
	// fields: Get("id") reads a field named "id", if the event has one.
	Fields map[string]Value
}

// Get returns the field's value and whether e has it.
func (e *Event) Get(field string) (Value, bool) {
	v, ok := e.Fields[field]
	return v, ok
}

// wireEvent is the JSON shape of an event; fields are checked one by one.
type wireEvent struct {
	ID     string                    `json:"id"`
	Time   string                    `json:"time"`
	Fields map[string]jsontext.Value `json:"fields"`
}

// DecodeEvent decodes one event {"id": …, "time": …, "fields": {…}}
// strictly (problem.Decode's rules, then the limits above). Field values
// are strings, integers written without fraction or exponent within
// ±(2^128-1), or booleans; null, floats, objects and arrays are refused.
// Errors are *problem.DecodeError with a JSON pointer.
func DecodeEvent(raw []byte) (Event, error) {
	var w wireEvent
	if err := problem.Decode(raw, &w); err != nil {
		return Event{}, err
	}
	return w.event()
}

func (w *wireEvent) event() (Event, error) {
	switch {
	case w.ID == "" || len(w.ID) > MaxEventIDBytes:
		return Event{}, invalid(codeInvalidEvent, "/id", "event id of %d bytes: want 1 to %d", len(w.ID), MaxEventIDBytes)
	case problem.HasNUL(w.ID):
		return Event{}, invalid(codeInvalidEvent, "/id", "event id holds U+0000")
	case w.Fields == nil:
		return Event{}, invalid(codeInvalidEvent, "/fields", "fields is required (an object, {} for none)")
	case len(w.Fields) > MaxEventFields:
		return Event{}, invalid(codeInvalidEvent, "/fields", "%d fields: at most %d", len(w.Fields), MaxEventFields)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err == nil && (t.Unix() < MinEventUnix || t.Unix() >= MaxEventUnix) {
		return Event{}, invalid(codeInvalidEvent, "/time", "time %s: want from 1970 to 2199", quoteShort(w.Time))
	}
	if err != nil {
		return Event{}, invalid(codeInvalidEvent, "/time", "time %s: want RFC 3339, as 2026-11-30T22:00:00Z", quoteShort(w.Time))
	}
	e := Event{ID: w.ID, Time: t.UTC(), Fields: make(map[string]Value, len(w.Fields))}
	for name, raw := range w.Fields {
		ptr := "/fields/" + pointerToken(name)
		if !ValidFieldName(name) {
			return Event{}, invalid(codeInvalidEvent, ptr, "field name %s: want ^[a-z_][a-z0-9_]{0,62}$", quoteShort(name))
		}
		v, err := decodeValue(raw)
		if err != nil {
			return Event{}, at(err, ptr)
		}
		e.Fields[name] = v
	}
	return e, nil
}

// decodeValue decodes one field value (already checked to be valid JSON).
func decodeValue(raw jsontext.Value) (Value, error) {
	raw = bytes.TrimSpace(raw)
	switch raw.Kind() {
	case '"':
		var s string
		if err := jsontextUnquote(raw, &s); err != nil {
			return Value{}, err
		}
		if len(s) > MaxStringBytes {
			return Value{}, invalid(codeInvalidEvent, "", "string of %d bytes: at most %d", len(s), MaxStringBytes)
		}
		return StringValue(s), nil
	case 't', 'f':
		return BoolValue(raw.Kind() == 't'), nil
	case '0':
		if bytes.ContainsAny(raw, ".eE") {
			return Value{}, invalid(codeInvalidEvent, "", "number %s: integers only (no fraction or exponent)", quoteShort(string(raw)))
		}
		i, err := ParseInt(string(raw))
		if err != nil {
			return Value{}, invalid(codeInvalidEvent, "", "%v", err)
		}
		return IntValue(i), nil
	}
	return Value{}, invalid(codeInvalidEvent, "", "a field value is a string, an integer or a boolean, not %s", kindName(raw.Kind()))
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "this"
}

func jsontextUnquote(raw jsontext.Value, s *string) error {
	b, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return invalid(codeInvalidEvent, "", "bad string: %v", err)
	}
	*s = string(b)
	return nil
}

// DecodeEvents decodes a single event object or {"events": [...]} with 1
// to MaxEventsPerBatch events. An error's pointer names the event
// ("/events/3/fields/amount").
func DecodeEvents(body []byte) ([]Event, error) {
	var probe map[string]jsontext.Value
	if err := problem.Decode(body, &probe); err != nil {
		return nil, err
	}
	raw, ok := probe["events"]
	if !ok {
		e, err := DecodeEvent(body)
		if err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	if len(probe) > 1 {
		names := slices.Sorted(maps.Keys(probe))
		name := names[0]
		if name == "events" {
			name = names[1]
		}
		return nil, invalid(problem.CodeUnknownMember, "/"+pointerToken(name), "unknown member %s next to events", quoteShort(name))
	}
	// The body was checked whole; decode the array from its bytes only.
	var list []jsontext.Value
	if err := problem.Decode(raw, &list); err != nil {
		return nil, at(err, "/events")
	}
	if len(list) == 0 || len(list) > MaxEventsPerBatch {
		return nil, invalid(codeInvalidEvent, "/events", "%d events: want 1 to %d", len(list), MaxEventsPerBatch)
	}
	out := make([]Event, 0, len(list))
	for i, raw := range list {
		e, err := DecodeEvent(raw)
		if err != nil {
			return nil, at(err, "/events/"+strconv.Itoa(i))
		}
		out = append(out, e)
	}
	return out, nil
}

// MarshalJSON encodes e in the form DecodeEvent reads, fields sorted by
// name, the time in RFC 3339 with nanoseconds as needed, in UTC.
func (e Event) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+32*len(e.Fields))
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","fields":{`...)
	names := make([]string, 0, len(e.Fields))
	for name := range e.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = e.Fields[name].AppendJSON(b)
	}
	return append(b, "}}"...), nil
}

// ValidFieldName reports whether name matches ^[a-z_][a-z0-9_]{0,62}$,
// the names of event fields.
func ValidFieldName(name string) bool {
	if name == "" || len(name) > maxIdentBytes || !isIdentStart(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if !isIdentByte(name[i]) {
			return false
		}
	}
	return true
}
