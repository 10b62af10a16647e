package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Torn segment indexes.
//
// kfake stores each partition segment as two files: NNN.dat, the record
// batches in Kafka's wire format, and NNN.idx, one 15-byte entry per batch
// (format version, checksum, leader epoch, running max timestamp, and a
// flag "written inside a transaction"). It appends the batch, then its
// entry, as two writes. A crash between them leaves one batch without an
// entry: kfake then reads that batch as non-transactional, and every entry
// it appends afterwards lands one slot early, so from there on data batches
// carry the flag of the batch before them (a marker's "no") and markers a
// data batch's "yes". At its next full replay kfake no longer sees those
// transactions at all: their aborted records turn visible to read_committed
// readers (seen: the relay read an aborted checkpoint, skipped the changes
// it named, and they never reached the stream).
//
// The repair rebuilds the index of every segment whose entry count differs
// from its batch count, from the batches themselves: the flag is set for a
// transactional data batch (kfake writes it so at produce time), clear for
// markers and other batches. Only format version 1, the one this file was
// written against, is rebuilt; TestIndexRebuildMatchesKfake compares the
// result with kfake's own files, so a format change fails that test rather
// than a repair.

const (
	indexEntryBytes = 15
	indexVersion    = 1
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// errIndexFormat means the directory was written by a kfake whose format
// this repair does not know.
var errIndexFormat = errors.New("broker: unknown kfake storage format version; cannot repair its segment indexes")

// repairIndexes rebuilds the torn indexes under dataDir (kfake's DataDir)
// and returns the segments it rewrote.
func repairIndexes(dataDir string) ([]string, error) {
	var meta struct {
		Version int `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // nothing persisted yet
	}
	if err != nil {
		return nil, fmt.Errorf("broker: repair: %w", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil || meta.Version != indexVersion {
		return nil, fmt.Errorf("%w (meta.json version %d)", errIndexFormat, meta.Version)
	}
	parts, err := filepath.Glob(filepath.Join(dataDir, "partitions", "*"))
	if err != nil {
		return nil, err
	}
	var fixed []string
	for _, dir := range parts {
		segs, err := segmentFiles(dir)
		if err != nil {
			return fixed, err
		}
		var maxTS int64 // running max over the partition, as kfake keeps it
		for _, seg := range segs {
			entries, controls, batchMax, err := indexFor(seg, maxTS)
			if err != nil {
				return fixed, err
			}
			maxTS = max(maxTS, batchMax)
			idxPath := strings.TrimSuffix(seg, ".dat") + ".idx"
			old, err := os.ReadFile(idxPath)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fixed, err
			}
			if len(old) == len(entries) && !markerFlagged(old, controls) {
				continue
			}
			for i := 0; i+indexEntryBytes <= len(old); i += indexEntryBytes {
				if old[i] != indexVersion {
					return fixed, fmt.Errorf("%w (%s: entry version %d)", errIndexFormat, idxPath, old[i])
				}
			}
			if err := writeFileSync(filepath.Dir(idxPath), filepath.Base(idxPath), entries); err != nil {
				return fixed, fmt.Errorf("broker: repair index: %w", err)
			}
			fixed = append(fixed, fmt.Sprintf("%s (%d entries for %d batches)", idxPath,
				len(old)/indexEntryBytes, len(entries)/indexEntryBytes))
		}
	}
	return fixed, nil
}

// segmentFiles lists a partition's .dat files in offset order.
func segmentFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type seg struct {
		base int64
		path string
	}
	var segs []seg
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".dat")
		if !ok {
			continue
		}
		base, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, seg{base, filepath.Join(dir, e.Name())})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].base < segs[j].base })
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.path
	}
	return out, nil
}

// markerFlagged reports whether an index flags a marker batch as written
// inside a transaction, which kfake never does: the entries are shifted
// (torn by an earlier version, then appended to).
func markerFlagged(idx []byte, controls []bool) bool {
	for i, c := range controls {
		if off := i * indexEntryBytes; c && off+indexEntryBytes <= len(idx) && idx[off+14]&1 != 0 {
			return true
		}
	}
	return false
}

// indexFor computes the index entries of the batches in segment file seg,
// stopping where kfake's load stops (a truncated or corrupt batch, which
// kfake then cuts off), which of them are markers, and the largest batch
// timestamp seen.
func indexFor(seg string, maxTS int64) (entries []byte, controls []bool, batchMax int64, err error) {
	raw, err := os.ReadFile(seg)
	if err != nil {
		return nil, nil, 0, err
	}
	var out []byte
	batchMax = maxTS
	for pos := 0; pos+12 <= len(raw); {
		n := int(binary.BigEndian.Uint32(raw[pos+8 : pos+12]))
		if n < 0 || n > 1<<30 || pos+12+n > len(raw) {
			break
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(raw[pos : pos+12+n]); err != nil || !crcOK(raw[pos:pos+12+n], rb.CRC) {
			break
		}
		batchMax = max(batchMax, rb.MaxTimestamp)
		control := rb.Attributes&0x0020 != 0
		inTx := rb.Attributes&0x0010 != 0 && !control
		out = append(out, indexEntry(rb.PartitionLeaderEpoch, batchMax, inTx)...)
		controls = append(controls, control)
		pos += 12 + n
	}
	return out, controls, batchMax, nil
}

// crcOK checks a record batch's CRC-32C, which covers everything from the
// attributes (byte 21) to the end.
func crcOK(batch []byte, crc int32) bool {
	return len(batch) > 21 && int32(crc32.Checksum(batch[21:], crc32c)) == crc
}

// indexEntry encodes one kfake index entry (format version 1): version,
// checksum of the rest, epoch, running max timestamp, flags.
func indexEntry(epoch int32, maxEarlierTS int64, inTx bool) []byte {
	var buf [indexEntryBytes]byte
	buf[0] = indexVersion
	binary.LittleEndian.PutUint32(buf[2:6], uint32(epoch))
	binary.LittleEndian.PutUint64(buf[6:14], uint64(maxEarlierTS))
	if inTx {
		buf[14] = 1
	}
	buf[1] = byte(crc32.Checksum(buf[2:], crc32c))
	return buf[:]
}
