package engine

import "fmt"

// invariantError is the panic value of a broken invariant: a bug, never bad
// input. The process stops; recovery from the log is the way back.
type invariantError string

func newInvariantError(format string, args ...any) invariantError {
	return invariantError("engine: invariant broken: " + fmt.Sprintf(format, args...))
}

func (e invariantError) Error() string { return string(e) }

// checkState recounts a whole shard from its orders and compares it with the
// running counts. It costs O(orders); the shard runs it after every batch
// only when built with -tags invariants, and recovery always runs it once,
// its two halves (checkKeys, checkCounts) on two goroutines.
func (st *state) checkState() {
	st.checkKeys()
	st.checkCounts()
}

// checkKeys checks that every order is found by its key.
func (st *state) checkKeys() {
	for i := int32(0); i < st.orders.n; i++ {
		if got, ok := st.byKey[st.orders.at(i).key]; !ok || got != i {
			panic(newInvariantError("order %d indexed at %d", i, got))
		}
	}
}

// checkCounts recounts held and sold tickets per tier, pending orders and
// tickets per user.
func (st *state) checkCounts() {
	type count struct{ held, sold int }
	counts := make([][]count, len(st.sales))
	tickets := make([]map[string]int32, len(st.sales))
	for i, sl := range st.sales {
		counts[i] = make([]count, len(sl.tiers))
		tickets[i] = make(map[string]int32, len(sl.users))
	}
	var pending int64
	for i := int32(0); i < st.orders.n; i++ {
		o := st.orders.at(i)
		c := &counts[o.sale][o.tier]
		if o.status == StatusPending {
			c.held += int(o.qty)
			pending++
		} else {
			c.sold += o.ticketsTaken()
		}
		tickets[o.sale][o.userID] += int32(o.ticketsTaken() * st.sales[o.sale].ticketsPer(int(o.tier)))
	}
	if pending != st.pending {
		panic(newInvariantError("pending orders: counted %d, running %d", pending, st.pending))
	}
	for i, sl := range st.sales {
		for t := range sl.tiers {
			checkTier(sl, t)
			if counts[i][t].held != sl.tiers[t].held || counts[i][t].sold != sl.tiers[t].sold {
				panic(newInvariantError("sale %q tier %d: counted held %d sold %d, running held %d sold %d",
					sl.cfg.ID, t, counts[i][t].held, counts[i][t].sold, sl.tiers[t].held, sl.tiers[t].sold))
			}
		}
		for user, u := range sl.users {
			if u.tickets != tickets[i][user] {
				panic(newInvariantError("sale %q user %q: counted %d tickets, running %d", sl.cfg.ID, user, tickets[i][user], u.tickets))
			}
		}
	}
	st.checkRealName() // realname.go
}
