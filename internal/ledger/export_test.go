package ledger

import "context"

// SubmitUnchecked submits txs as a Batch that skipped validation, as if a
// value that validation misses had got through: tests of the pipeline's
// defence in depth use it. It is the only way to build such a Batch.
func (p *Pipeline) SubmitUnchecked(ctx context.Context, tenant string, txs []TxInput) ([]Result, error) {
	return p.Submit(ctx, tenant, prepare(txs))
}
