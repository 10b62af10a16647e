package featurebench

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/bulwark-ledger/bulwark/internal/features/spec"
)

// The workload: payments by card. Every event names a card drawn from
// Entities cards with a Zipf distribution, an amount and a device (each
// card uses up to devicesPerCard devices).
const (
	benchTenant    = "bench"
	entityField    = "card"
	devicesPerCard = 4
	maxAmount      = 100_000
)

// windows of every feature: 4 windows × 5 aggregations = 20 feature values.
var windows = []string{"1m", "10m", "1h", "1d"}

// featureDef is one definition of the workload.
type featureDef struct {
	Name        string   `json:"name"`
	Source      string   `json:"source"`
	Entity      string   `json:"entity"`
	Aggregation string   `json:"aggregation"`
	Field       string   `json:"field,omitempty"`
	Windows     []string `json:"windows"`
}

// definitions are the 5 aggregations of the workload, each over the 4 windows.
func definitions() []featureDef {
	mk := func(name, agg, field string) featureDef {
		return featureDef{Name: name, Source: spec.SourceEvents, Entity: entityField, Aggregation: agg, Field: field, Windows: windows}
	}
	return []featureDef{
		mk("card_count", spec.AggCount, ""),
		mk("card_amount_sum", spec.AggSum, "amount"),
		mk("card_amount_min", spec.AggMin, "amount"),
		mk("card_amount_max", spec.AggMax, "amount"),
		mk("card_devices", spec.AggDistinctCount, "device"),
	}
}

// payment is one generated event.
type payment struct {
	id     string
	card   int
	amount int64
	device int
}

func (p payment) cardID() string   { return cardID(p.card) }
func cardID(k int) string          { return "c" + strconv.Itoa(k) }
func (p payment) deviceID() string { return "d" + strconv.Itoa(p.device) }

// event returns p as an engine event happening at t.
func (p payment) event(t time.Time) spec.Event {
	return spec.Event{ID: p.id, Time: t, Fields: map[string]spec.Value{
		entityField: spec.StringValue(p.cardID()),
		"amount":    spec.IntValue(spec.IntFromInt64(p.amount)),
		"device":    spec.StringValue(p.deviceID()),
	}}
}

// generator draws payments; not safe for concurrent use.
type generator struct {
	r      *rand.Rand
	zipf   *rand.Zipf
	prefix string
	next   int
	seen   map[int]struct{} // distinct cards drawn
}

func newGenerator(cfg *Config, stream uint64, prefix string) *generator {
	r := rand.New(rand.NewPCG(cfg.Seed, stream))
	return &generator{r: r, zipf: rand.NewZipf(r, cfg.ZipfS, cfg.ZipfV, uint64(cfg.Entities-1)), prefix: prefix,
		seen: make(map[int]struct{})}
}

func (g *generator) payment() payment {
	card := int(g.zipf.Uint64())
	g.seen[card] = struct{}{}
	g.next++
	return payment{id: g.prefix + strconv.Itoa(g.next), card: card, amount: 1 + g.r.Int64N(maxAmount),
		device: card*devicesPerCard + g.r.IntN(devicesPerCard)}
}

// card draws a card as payments do, without recording it.
func (g *generator) card() int { return int(g.zipf.Uint64()) }
