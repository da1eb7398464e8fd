package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines hands out contexts whose deadline lies between timeout and
// timeout+period from now, without an allocation per request: every period
// a goroutine makes one context with a deadline timeout+period away, and
// every request of that period shares it. context.WithTimeout per request
// would cost a timer and two objects on the purchase path.
type deadlines struct {
	cur     atomic.Pointer[deadlineCtx]
	timeout time.Duration
	period  time.Duration

	quit     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

type deadlineCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newDeadlines(timeout time.Duration) *deadlines {
	d := &deadlines{
		timeout: timeout,
		period:  max(timeout/5, time.Millisecond),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	d.rotate()
	go d.loop()
	return d
}

func (d *deadlines) current() context.Context { return d.cur.Load().ctx }

func (d *deadlines) rotate() *deadlineCtx {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout+d.period)
	return d.cur.Swap(&deadlineCtx{ctx, cancel})
}

func (d *deadlines) loop() {
	defer close(d.done)
	t := time.NewTicker(d.period)
	defer t.Stop()
	// Contexts handed out recently, cancelled (to release their timers)
	// once their deadline has surely passed.
	var old []*deadlineCtx
	n := int((d.timeout+d.period)/d.period) + 1
	for {
		select {
		case <-d.quit:
			return
		case <-t.C:
			old = append(old, d.rotate())
			if len(old) > n {
				old[0].cancel()
				old = old[1:]
			}
		}
	}
}

// stop ends the rotation; contexts already handed out keep their deadlines.
func (d *deadlines) stop() {
	d.stopOnce.Do(func() {
		close(d.quit)
		<-d.done
	})
}
