package ledgerbench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/bulwark-ledger/bulwark/internal/ledger"
)

const (
	// uniformAccounts is the spread of the uniform workload.
	uniformAccounts = 10_000
	// hotPeers are the counterparties of the hot account: enough that two
	// transfers rarely share one (so the hot row is the only contention),
	// few enough to create in one COPY.
	hotPeers = 1_000
	hotID    = "hot"
	asset    = "USD"
)

// workload is the accounts of a run and how transfers pick among them.
// Its fields are read-only once built, shared by every client.
type workload struct {
	accounts []string
	hot      bool
}

func newWorkload(name string) *workload {
	switch name {
	case WorkloadHot:
		w := &workload{accounts: make([]string, 0, hotPeers+1), hot: true}
		w.accounts = append(w.accounts, hotID)
		for i := range hotPeers {
			w.accounts = append(w.accounts, fmt.Sprintf("p%04d", i))
		}
		return w
	case WorkloadUniform:
		w := &workload{accounts: make([]string, uniformAccounts)}
		for i := range w.accounts {
			w.accounts[i] = fmt.Sprintf("u%05d", i)
		}
		return w
	}
	panic(fmt.Sprintf("ledgerbench: unknown workload %q (Validate accepts it)", name))
}

// pick returns the accounts of the next transfer: in the hot workload the
// hot account and a random peer, the hot one debited half the time; in the
// uniform workload two distinct random accounts.
func (w *workload) pick(r *rand.Rand) (source, destination string) {
	if w.hot {
		peer := w.accounts[1+r.IntN(len(w.accounts)-1)]
		if r.IntN(2) == 0 {
			return hotID, peer
		}
		return peer, hotID
	}
	n := len(w.accounts)
	i, j := r.IntN(n), r.IntN(n-1)
	if j >= i {
		j++
	}
	return w.accounts[i], w.accounts[j]
}

// inputs returns the accounts to create. Rule "none" lets balances go
// negative, so no transfer of the benchmark is ever rejected for funds.
func (w *workload) inputs() []ledger.AccountInput {
	out := make([]ledger.AccountInput, len(w.accounts))
	for i, id := range w.accounts {
		out[i] = ledger.AccountInput{ID: id, Asset: asset, Scale: 2, Rule: ledger.RuleNone, Metadata: json.RawMessage(`{}`)}
	}
	return out
}
