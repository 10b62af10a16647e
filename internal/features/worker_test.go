package features

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRecordsWithoutPositionEndTheSession: records of a partition whose
// stored position the session has not loaded are not skipped (the
// client's fetch position moved past them, so the partition would stall
// for the rest of the session); the batch fails with errUnplaced, which
// ends the session, and nothing of the batch is applied.
func TestRecordsWithoutPositionEndTheSession(t *testing.T) {
	t.Parallel()
	w := &worker{pos: map[tp]int64{}}
	batch := []partBatch{{k: tp{"bulwark.features.events", 1}, recs: []*kgo.Record{{Offset: 100}, {Offset: 101}}, fetches: 1}}
	err := w.applyBatch(context.Background(), batch)
	if !errors.Is(err, errUnplaced) {
		t.Fatalf("applyBatch of a partition without a position: %v, want errUnplaced", err)
	}
	if _, ok := w.pos[batch[0].k]; ok {
		t.Fatal("the failed batch recorded a position")
	}
}
