package engine

import (
	"errors"
	"fmt"
	"log/slog"
)

// CheckSummary is what Check rebuilt from a journal.
type CheckSummary struct {
	Shards int // the journal's layout
	Sales  int
	Orders int
}

// Check rebuilds every shard's state from the journal exactly as Open
// does (each snapshot loaded, each entry after it decoded and applied, the
// result recounted against the invariants) and writes nothing: the
// journal's own layout is used, so nothing is repartitioned, and no shard
// starts. It verifies a backup; an error names the shard and what is wrong.
func Check(j Journal, logger *slog.Logger) (CheckSummary, error) {
	if logger == nil {
		logger = slog.Default()
	}
	shards, err := j.Layout()
	if err != nil {
		return CheckSummary{}, fmt.Errorf("engine: cannot read log layout: %w", err)
	}
	if shards == 0 {
		return CheckSummary{}, errors.New("engine: the log is empty: no layout, no snapshot, no entry")
	}
	states, _, err := recoverStates(j, shards, logger)
	if err != nil {
		return CheckSummary{}, err
	}
	sum := CheckSummary{Shards: shards}
	for _, st := range states {
		sum.Sales += len(st.sales)
		sum.Orders += int(st.orders.n)
	}
	return sum, nil
}
