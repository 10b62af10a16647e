package ledger

import "context"

// SubmitUnchecked submits txs without validation, as if a value that
// validation misses had got through: tests of the pipeline's defence in
// depth use it.
func (p *Pipeline) SubmitUnchecked(ctx context.Context, tenant string, txs []TxInput) ([]Result, error) {
	return p.submit(ctx, newRequest(tenant, txs, ""))
}
