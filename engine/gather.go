package engine

import (
	"sync/atomic"
	"time"
)

// Gathering: why the log writer sometimes waits.
//
// Callers in a closed loop (a frontend's connection pool, a bench client)
// send their next request as soon as they are answered. If the log syncs as
// soon as anything waits, they split into two cohorts: while cohort A's sync
// runs, cohort B's requests arrive and are appended; when A's sync ends, B's
// sync starts at once, A's callers come back a moment later and must wait
// for all of B's sync before theirs starts. Each request waits two syncs,
// and each sync carries half the callers. Measured in-process with 16
// callers: 8 purchases per fsync, ~2.2 fsyncs of latency per purchase, with
// the disk busy ~90 % of the time (BenchmarkPurchaseWAL).
//
// So, when the committer finds nothing syncing, it may hold what it has
// until it holds as many requests as were in flight when the last sync
// ended (the cohorts together), for at most the last sync's duration
// (bounded by Config.SyncGatherMax). Held batches lose nothing: while a
// sync runs they could not have joined it anyway, and once it ended they
// wait at most one sync's length for the others. When the callers come
// back, both cohorts share one sync: the latency becomes one sync plus
// their round trip, and each fsync carries twice the work.
//
// An open-loop load (arrivals that are not returning callers) would make
// most gathers wait their whole bound for callers who are not coming. So a
// gather that times out makes the next gathersSkippedAfterMiss groups go
// out without waiting; a gather that fills ends the penalty.
type gatherer struct {
	max      time.Duration
	unsynced atomic.Int32  // Append groups appended and not yet synced
	synced   chan struct{} // a sync ended (buffered 1; the acker never blocks)
	expect   atomic.Int64  // requests in flight when the last sync ended
	lastSync atomic.Int64  // the last sync's duration, ns

	// committer only
	timer *time.Timer
	skip  int  // groups left to send without waiting, after a miss
	fixed bool // wait up to max, whatever the last sync took (tests)
}

// gatherBoundFixed makes new gatherers wait up to their max, not the last
// sync's duration: tests set it to make holding independent of timing.
var gatherBoundFixed = false

const gathersSkippedAfterMiss = 8

func newGatherer(max time.Duration) *gatherer {
	g := &gatherer{max: max, synced: make(chan struct{}, 1), fixed: gatherBoundFixed}
	if max > 0 {
		g.timer = time.NewTimer(time.Hour)
		g.timer.Stop()
	}
	return g
}

// syncEnded is called by the acker after each sync, before it answers:
// inFlight counts the requests decided and not yet answered, the synced
// group's included.
func (g *gatherer) syncEnded(took time.Duration, inFlight int64) {
	g.lastSync.Store(int64(took))
	g.expect.Store(inFlight)
	g.unsynced.Add(-1)
	select {
	case g.synced <- struct{}{}:
	default:
	}
}

// gather adds to group the batches that arrive while the committer should
// wait, and returns the group to append. It returns at once when gathering
// is off, when the group is full, or when nothing more is expected.
func (s *shard) gather(group []*batch) []*batch {
	g := s.gatherer
	if g.max <= 0 {
		return group
	}
	if g.skip > 0 {
		g.skip--
		return group
	}
	reqs := 0
	for _, b := range group {
		reqs += len(b.reqs)
	}
	var until time.Time // when waiting ends; zero until the last sync has ended
	armed := false
	defer func() {
		if armed {
			g.timer.Stop()
		}
	}()
	for len(group) < batchesInFlight && !s.e.failed.Load() { // the loop stalls without free batches
		if g.unsynced.Load() == 0 {
			if int64(reqs) >= g.expect.Load() {
				return group
			}
			now := time.Now()
			if until.IsZero() {
				bound := g.max
				if !g.fixed {
					bound = min(bound, time.Duration(g.lastSync.Load()))
				}
				until = now.Add(bound)
			}
			if !now.Before(until) {
				g.skip = gathersSkippedAfterMiss // those expected did not come
				return group
			}
			if armed {
				g.timer.Stop()
			}
			g.timer.Reset(until.Sub(now))
			armed = true
		}
		var timeout <-chan time.Time
		if armed {
			timeout = g.timer.C
		}
		select {
		case b, ok := <-s.commitQ:
			if !ok {
				return group
			}
			group = append(group, b)
			reqs += len(b.reqs)
		case <-g.synced:
		case <-timeout:
			armed = false
		}
	}
	return group
}
