package admission

import "strconv"

// Request is what the admission decision looks at. The caller builds it from
// the HTTP request and its auth layer; Admit never retains it.
//
// Tenant, Route and Client come from code the server trusts (the API key
// lookup, the router). Source and Traffic are claims read from headers that
// the client controls, so they are checked against Entitled before they count.
type Request struct {
	Tenant string // tenant of the API key
	Route  string // business type of the endpoint, for example "payments"
	Client string // client or application id of the API key

	Source  string // claimed source header, for example "app", "web", "partner"
	Traffic string // claimed traffic type, for example "normal", "batch", "crawler"

	// Entitled lists what this API key may claim. A claim it does not list
	// is downgraded to the entitlement's default, never trusted.
	Entitled Entitlements

	// StaleOK marks a read whose handler can answer from a stale cache
	// entry (see Reads). When such a request is shed for overload, the
	// middleware passes it on with the rejection in its context instead of
	// answering 503 itself. Set it only for handlers that honour
	// RejectionFrom (Reads.Do does): the handler then runs without an
	// admission ticket and must not reach the backend.
	StaleOK bool
}

// trafficClass is the quota class of the request's effective traffic type
// (its claim, if the key is entitled to it): ClassBatch, ClassCrawler or
// ClassAll for any other.
func (r *Request) trafficClass() string {
	switch t, _ := r.Entitled.traffic(r.Traffic); t {
	case ClassBatch, ClassCrawler:
		return t
	}
	return ClassAll
}

// Entitlements are the sources and traffic types an API key may claim, as
// stored in the control plane. The zero value entitles nothing: every claim
// becomes "" (the "*" rule of its dimension).
//
// Admit reads the slices and never modifies or keeps them; the caller may
// share one Entitlements between concurrent requests.
type Entitlements struct {
	Sources        []string // sources the key may claim
	Traffic        []string // traffic types the key may claim
	DefaultSource  string   // used when the claim is empty or not allowed
	DefaultTraffic string   // used when the claim is empty or not allowed
}

// source returns the effective source and whether the claim was downgraded.
func (e *Entitlements) source(claim string) (string, bool) {
	return entitled(claim, e.Sources, e.DefaultSource)
}

// traffic returns the effective traffic type and whether the claim was
// downgraded.
func (e *Entitlements) traffic(claim string) (string, bool) {
	return entitled(claim, e.Traffic, e.DefaultTraffic)
}

func entitled(claim string, allowed []string, def string) (string, bool) {
	if claim == "" || claim == def {
		return def, false
	}
	for _, a := range allowed {
		if a == claim {
			return claim, false
		}
	}
	return def, true
}

// Priority is an ordered level: 0 is the lowest and is shed first; the
// highest level of the current Rules (Rules.Top) is never shed by overload
// control, only by its tenant's quota and the MaxInflight hard cap.
type Priority uint8

// MaxLevels bounds the number of priority levels a rule table may define.
// Eight is more than operators can reason about and keeps the per-level
// metric series small (8 levels × 6 reasons = 48 counters).
const MaxLevels = 8

var priorityLabels = func() (l [MaxLevels]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

// String returns the level number as used in metric labels.
func (p Priority) String() string {
	if int(p) < MaxLevels {
		return priorityLabels[p]
	}
	return strconv.Itoa(int(p))
}

// Outcome is how an admitted request ended, as reported to Ticket.Done. It
// decides what the capacity estimate learns from the request.
type Outcome uint8

const (
	// Success: the backend answered. Its latency feeds the estimate.
	Success Outcome = iota
	// Failure: the request failed for a reason unrelated to load (bad
	// input, not found, a bug). Its latency is not sampled, so fast errors
	// cannot make the backend look faster than it is.
	Failure
	// Dropped: the request timed out or the backend reported overload.
	// Drops are a congestion signal: a window with more than DropTolerance
	// drops lowers the estimate and never raises it.
	Dropped
	// Ignore: nothing to learn (for example the work was abandoned before
	// it reached the backend).
	Ignore
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Dropped:
		return "dropped"
	case Ignore:
		return "ignore"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Stage is the overload state of the controller.
type Stage uint8

const (
	// StageNormal: in-flight work is below the capacity estimate and no
	// level is shed; everything is admitted.
	StageNormal Stage = 1
	// StageShedding: demand exceeds the estimate; levels below the
	// threshold are rejected and the rest share the estimate.
	StageShedding Stage = 2
	// StageCollapse: queueing delay or in-flight work is far past the
	// estimate; everything but the highest level is rejected.
	StageCollapse Stage = 3
)

// String names the stage as it appears in problem documents.
func (s Stage) String() string {
	switch s {
	case StageNormal:
		return "normal"
	case StageShedding:
		return "shedding"
	case StageCollapse:
		return "collapse"
	}
	return "stage(" + strconv.Itoa(int(s)) + ")"
}

// Reason says which limit rejected a request.
type Reason uint8

const (
	ReasonQuota     Reason = iota // the tenant's quota is spent (429)
	ReasonBurst                   // the short-window burst limit is full (503)
	ReasonThreshold               // the priority is below the shedding threshold (503)
	ReasonCapacity                // in-flight work is at the capacity estimate (503)
	ReasonCollapse                // stage 3: only the highest level is admitted (503)
	ReasonHardLimit               // in-flight work is at MaxInflight (503)
	// ReasonTrafficQuota: the tenant's quota of the batch or crawler
	// traffic type it claims is spent (429; problem stage "quota").
	ReasonTrafficQuota
	numReasons
)

var reasonNames = [numReasons]string{"quota", "burst", "threshold", "capacity", "collapse", "hard_limit", "traffic_quota"}

// String names the reason as it appears in problem documents and metrics.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}
