package export

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"
	"io"
	"os"
	"unicode/utf8"
)

// encoder renders rows of text values (nil: SQL NULL) in one format. Its
// output depends on the values only, so re-reading a chunk after a crash
// writes the same bytes.
type encoder struct {
	format string
	cols   []Column
	keys   [][]byte // JSONL: `"name":` per column, with its leading '{' or ','
}

func newEncoder(format string, cols []Column) *encoder {
	e := &encoder{format: format, cols: cols}
	for i, c := range cols {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		k := append([]byte{sep}, appendJSONString(nil, []byte(c.Name))...)
		e.keys = append(e.keys, append(k, ':'))
	}
	return e
}

// header is what the file starts with: the column names for CSV.
func (e *encoder) header(dst []byte) []byte {
	if e.format != FormatCSV {
		return dst
	}
	for i, c := range e.cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendCSV(dst, []byte(c.Name))
	}
	return append(dst, '\n')
}

// row appends one row.
func (e *encoder) row(dst []byte, vals [][]byte) []byte {
	if e.format == FormatCSV {
		for i, v := range vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			if v != nil {
				dst = appendCSV(dst, v)
			}
		}
		return append(dst, '\n')
	}
	for i, v := range vals {
		dst = append(dst, e.keys[i]...)
		switch {
		case v == nil:
			dst = append(dst, "null"...)
		case e.cols[i].Type == "integer" || e.cols[i].Type == "json":
			dst = append(dst, v...) // PostgreSQL's text of an integer or jsonb is JSON
		default:
			dst = appendJSONString(dst, v)
		}
	}
	return append(dst, '}', '\n')
}

// appendCSV quotes a non-NULL field as PostgreSQL's COPY … (FORMAT csv)
// does: when it is empty (an unquoted empty field is NULL) or holds a
// comma, a double quote, CR or LF, doubling the quotes inside. The export
// and COPY of the same query are then byte-identical (see CopySQL).
func appendCSV(dst, v []byte) []byte {
	quote := len(v) == 0
	for _, c := range v {
		if c == ',' || c == '"' || c == '\n' || c == '\r' {
			quote = true
			break
		}
	}
	if !quote {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	for _, c := range v {
		if c == '"' {
			dst = append(dst, '"')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends v as a JSON string. PostgreSQL text is valid
// UTF-8 (the database encoding); an invalid byte would still be written
// as U+FFFD rather than break the line's JSON.
func appendJSONString(dst, v []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, v[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// writeBufBytes sizes the buffer between the encoder and the file: 256 KiB
// keeps write system calls few without holding much memory per worker.
const writeBufBytes = 256 << 10

// file is an export file being written from a checkpoint: it counts and
// hashes the bytes that reach it. Each chunk is one gzip member when
// compressed (concatenated members are one valid gzip stream), so a chunk
// rewritten after a crash compresses to the same bytes whatever came
// before it.
type file struct {
	f   *os.File
	bw  *bufio.Writer
	h   hash.Hash
	off int64
	gz  *gzip.Writer // nil: uncompressed
	out io.Writer    // where encoded bytes go: gz or the counting writer
}

// openFile opens path and cuts it to the checkpoint (offset, hash state):
// anything past the checkpoint was written by an attempt that did not
// record it, and is written again identically.
func openFile(path string, offset int64, hashState []byte, gzipped bool) (*file, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fl := &file{f: f, h: sha256.New(), off: offset}
	if err := fl.restore(offset, hashState); err != nil {
		f.Close()
		return nil, err
	}
	fl.bw = bufio.NewWriterSize(f, writeBufBytes)
	fl.out = (*counter)(fl)
	if gzipped {
		// BestSpeed: compression must not be the export's bottleneck; a
		// fixed level keeps the bytes reproducible.
		fl.gz, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed) // the level is valid
	}
	return fl, nil
}

func (fl *file) restore(offset int64, hashState []byte) error {
	if len(hashState) > 0 {
		if err := fl.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(hashState); err != nil {
			return fmt.Errorf("restore hash state: %w", err)
		}
	} else if offset != 0 {
		return fmt.Errorf("checkpoint at byte %d without a hash state", offset)
	}
	st, err := fl.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < offset {
		return fmt.Errorf("file holds %d bytes, less than the checkpoint's %d (was it removed?)", st.Size(), offset)
	}
	if err := fl.f.Truncate(offset); err != nil {
		return err
	}
	_, err = fl.f.Seek(offset, io.SeekStart)
	return err
}

// counter is the file seen as the writer that hashes and counts.
type counter file

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.off += int64(len(p))
	return c.bw.Write(p)
}

// beginChunk starts a chunk (a gzip member when compressed).
func (fl *file) beginChunk() {
	if fl.gz != nil {
		fl.gz.Reset((*counter)(fl))
		fl.out = fl.gz
	}
}

func (fl *file) Write(p []byte) (int, error) { return fl.out.Write(p) }

// endChunk ends the chunk and makes it durable: after it returns, the
// bytes up to Offset are on disk and a checkpoint may say so.
func (fl *file) endChunk() error {
	if fl.gz != nil {
		if err := fl.gz.Close(); err != nil {
			return err
		}
	}
	if err := fl.bw.Flush(); err != nil {
		return err
	}
	return fl.f.Sync()
}

// hashState is the serialised SHA-256 state of the bytes so far.
func (fl *file) hashState() []byte {
	b, err := fl.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("export: sha256 state: %v", err)) // crypto/sha256 always can
	}
	return b
}

func (fl *file) sum() string { return fmt.Sprintf("%x", fl.h.Sum(nil)) }

func (fl *file) Close() error { return fl.f.Close() }
