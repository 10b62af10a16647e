package ratelimit

import "github.com/bulwark-ledger/bulwark/internal/control"

// ControlRates reads task rates from a control watcher: the rate of task t
// is the setting control.TaskRateKey(t).
type ControlRates struct {
	w    *control.Watcher
	keys map[string]string // task → setting key, built once (no allocation per call)
}

// FromControl returns the rates of the given task types (default: the four
// built-in ones) as the watcher's snapshots say.
func FromControl(w *control.Watcher, tasks ...string) *ControlRates {
	if len(tasks) == 0 {
		tasks = []string{control.TaskRecompute, control.TaskAggBackfill, control.TaskVelocityDetail, control.TaskExportHuge}
	}
	c := &ControlRates{w: w, keys: make(map[string]string, len(tasks))}
	for _, t := range tasks {
		c.keys[t] = control.TaskRateKey(t)
	}
	return c
}

// Rate implements Rates.
func (c *ControlRates) Rate(tenant, task string) (float64, <-chan struct{}, bool) {
	s := c.w.Current()
	k, ok := c.keys[task]
	if !ok {
		return 0, s.Superseded(), false
	}
	v, ok := s.Value(tenant, k)
	return v.Float(), s.Superseded(), ok
}
