package notify

import (
	"sync"
	"sync/atomic"
	"time"
)

// Delivery yields to buyers. On a small machine the notifier's work (read
// the log back, build and store the records, sign, POST, log each
// delivery) takes the same cores the shards' deciding and syncing need:
// during a rush, delivering every notification as it was decided halved
// purchases. So the notifier watches how many log entries the shards sync
// (DurableSeq, summed over shards, over the last second; a quiet entry is
// one decision, a busy one carries many): at or above Config.BusyAbove a
// second the engine is busy, and then
//
//   - deliveries over all endpoints and email together start at most
//     Config.BusyRate a second (wait);
//   - the reader reads the log only as far as those paced deliveries
//     need (a read-ahead of readAheadBusy notifications), or all of it
//     when a snapshot waits to truncate (BeforeTruncate): the rest stays
//     in the log, which is the outbox's durable part already, and is read
//     after the rush.
//
// When the rate falls below BusyAbove, the reader reads everything and the
// workers deliver at full speed. Nothing is dropped or reordered: pacing
// only delays a worker's next delivery and the reader's next read, which
// still take entries and records in order. A busy spell longer than
// Config.BusyMax is no longer a rush but the server's normal load:
// pacing stops until the rate falls below BusyAbove again, so that a
// sustained load cannot grow the backlog without end. The backlog is in
// the metrics: onsale_outbox_lag (log entries not read yet) and
// onsale_webhook_backlog (records not delivered yet).

const (
	paceSlots    = 10                     // the window: paceSlots slots of paceSlot
	paceSlot     = 100 * time.Millisecond // so one second
	paceCheckMax = 50 * time.Millisecond  // a paced worker looks again whether the rush ended this often
)

// pacer counts synced log entries over the last second and spaces
// deliveries while the count is high. Any goroutine may call it.
type pacer struct {
	above   int64         // entries in the window that make the engine busy; <= 0: never
	every   int64         // ns between paced deliveries
	longest time.Duration // a busy spell longer than this is not paced
	force   atomic.Int32  // tests: 1 busy, 2 not busy, 0 the count decides

	mu    sync.Mutex
	slots [paceSlots]int64 // entries per slot, slot i covering the paceSlot whose number mod paceSlots is i
	last  int64            // the newest slot's number (unix ns / paceSlot)
	next  int64            // unix ns: the next paced delivery may start then
	since time.Time        // when the current busy spell began; zero: not busy

	busy atomic.Bool // as last computed, for the metrics
}

func newPacer(above, rate float64, longest time.Duration) *pacer {
	p := &pacer{above: int64(above), longest: longest}
	if rate <= 0 {
		rate = 1
	}
	p.every = int64(float64(time.Second) / rate)
	return p
}

// decided records n log entries synced at now (the reader, each round).
func (p *pacer) decided(n int, now time.Time) {
	p.mu.Lock()
	p.roll(now.UnixNano() / int64(paceSlot))
	p.slots[p.last%paceSlots] += int64(n)
	p.mu.Unlock()
}

// roll moves the window to slot s, clearing the slots it passes.
func (p *pacer) roll(s int64) {
	if s <= p.last {
		return
	}
	for i := p.last + 1; i <= s && i <= p.last+paceSlots; i++ {
		p.slots[i%paceSlots] = 0
	}
	p.last = s
}

// isBusy says whether the last second held BusyAbove entries or more, in a
// spell not longer than BusyMax.
func (p *pacer) isBusy(now time.Time) bool {
	if f := p.force.Load(); f != 0 {
		p.busy.Store(f == 1)
		return f == 1
	}
	if p.above <= 0 {
		return false
	}
	p.mu.Lock()
	p.roll(now.UnixNano() / int64(paceSlot))
	var sum int64
	for _, c := range p.slots {
		sum += c
	}
	b := sum >= p.above
	switch {
	case !b:
		p.since = time.Time{}
	case p.since.IsZero():
		p.since = now
	case now.Sub(p.since) > p.longest:
		b = false // the normal load now, not a rush
	}
	p.mu.Unlock()
	p.busy.Store(b)
	return b
}

// wait returns once a delivery may start: at once when the engine is not
// busy, else at the next paced slot (shared by all workers); false when
// stop closes first.
func (p *pacer) wait(stop ...<-chan struct{}) bool {
	for {
		now := time.Now()
		if !p.isBusy(now) {
			return true
		}
		p.mu.Lock()
		t := now.UnixNano()
		if p.next <= t {
			p.next = t + p.every
			p.mu.Unlock()
			return true
		}
		d := time.Duration(p.next - t)
		p.mu.Unlock()
		if !sleepOn(min(d, paceCheckMax), stop...) {
			return false
		}
	}
}

// sleepOn waits d, or until one of stop closes (false).
func sleepOn(d time.Duration, stop ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var a, b <-chan struct{}
	if len(stop) > 0 {
		a = stop[0]
	}
	if len(stop) > 1 {
		b = stop[1]
	}
	select {
	case <-t.C:
		return true
	case <-a:
		return false
	case <-b:
		return false
	}
}

// readAheadBusy: while busy, the reader keeps this many notifications
// stored ahead of the slowest consumer, and reads no more.
const readAheadBusy = 256

// watch feeds the pacer the entries the shards synced since the last
// round (the reader, before each round).
func (n *Notifier) watch() {
	shards := n.eng.Shards()
	if len(n.synced) != shards {
		n.synced = make([]uint64, shards)
		for s := range shards {
			n.synced[s] = n.eng.DurableSeq(s)
		}
	}
	var sum uint64
	for s := range shards {
		d := n.eng.DurableSeq(s)
		sum += d - min(d, n.synced[s])
		n.synced[s] = d
	}
	now := time.Now()
	n.pace.decided(int(sum), now)
	n.pace.isBusy(now)
}

// readBudget is how many notifications the reader may read from each
// shard this round: -1 (all) unless the engine is busy and no snapshot
// waits; then what tops the stored backlog up to readAheadBusy.
func (n *Notifier) readBudget(shards int) int {
	if !n.pace.busy.Load() || n.truncations.Load() > 0 {
		return -1
	}
	n.mu.Lock()
	low := n.head
	for _, w := range n.workers {
		low = min(low, w.cursor.Load())
	}
	if n.email != nil {
		low = min(low, n.email.cursor.Load())
	}
	stored := n.head - low
	n.mu.Unlock()
	if stored >= readAheadBusy {
		return 0
	}
	return (readAheadBusy - int(stored) + shards - 1) / shards
}

// Lag is how many synced log entries the reader has not read into the
// outbox yet, over all shards (onsale_outbox_lag).
func (n *Notifier) Lag() int64 {
	if !n.started.Load() {
		return 0
	}
	n.mu.Lock()
	consumed := append([]uint64(nil), n.consumed...)
	n.mu.Unlock()
	var lag int64
	for s, c := range consumed {
		if d := n.eng.DurableSeq(s); d > c {
			lag += int64(d - c)
		}
	}
	return lag
}
