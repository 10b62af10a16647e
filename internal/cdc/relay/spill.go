package relay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// spill holds the changes of one streamed in-progress transaction on disk
// until its Stream Commit or Stream Abort, so that a transaction of any size
// costs one 64 KiB buffer of memory.
type spill struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	aborted map[uint32]bool // aborted subtransactions
}

func newSpill(dir string, xid uint32) (*spill, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spill dir: %w", err)
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf("xid-%d-*.jsonl", xid))
	if err != nil {
		return nil, fmt.Errorf("spill file: %w", err)
	}
	return &spill{path: f.Name(), f: f, w: bufio.NewWriterSize(f, 64<<10), aborted: map[uint32]bool{}}, nil
}

func (sp *spill) write(c *change) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := sp.w.Write(b); err != nil {
		return fmt.Errorf("spill write: %w", err)
	}
	return nil
}

// replay calls fn for every spilled change in order.
func (sp *spill) replay(fn func(*change) error) error {
	if err := sp.w.Flush(); err != nil {
		return fmt.Errorf("spill flush: %w", err)
	}
	if _, err := sp.f.Seek(0, 0); err != nil {
		return err
	}
	r := bufio.NewReaderSize(sp.f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			return nil // io.EOF: written lines always end in '\n'
		}
		var c change
		if err := json.Unmarshal(line, &c); err != nil {
			return fmt.Errorf("spill read %s: %w", filepath.Base(sp.path), err)
		}
		if err := fn(&c); err != nil {
			return err
		}
	}
}

func (sp *spill) remove() {
	sp.f.Close()
	os.Remove(sp.path)
}

func (s *session) dropSpills() {
	for xid, sp := range s.streams {
		sp.remove()
		delete(s.streams, xid)
	}
	s.r.m.openStreams.Set(0)
}

// removeStaleSpills deletes spill files a killed relay left behind: a new
// session receives every unconfirmed streamed transaction again.
func removeStaleSpills(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, "xid-*.jsonl"))
	for _, f := range stale {
		os.Remove(f)
	}
}
