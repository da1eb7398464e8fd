package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/httpapi"
)

// Options configure a Fleet. Zero values take the defaults in brackets.
type Options struct {
	Conn *nats.Conn // required
	// LeaseConn, if set, carries the lease's own requests (taking and
	// renewing it), so that nothing else the node sends or receives on
	// Conn (a takeover's log, accounts, notifications) delays a renewal
	// [Conn].
	LeaseConn  *nats.Conn
	Partitions int           // sale partitions of the whole fleet; fixed for its life [4]
	Addr       string        // host:port at which other nodes reach this one (required)
	Lease      time.Duration // how long a lease lasts without renewal [3s]
	Prefer     int           // partition Acquire tries first [0]
	Replicas   int           // copies of the lease bucket [3]
	Logger     *slog.Logger  // [slog.Default()]
	// OnLost runs once, from the renewer, when a renewal fails or comes
	// too late: the node no longer owns its partition [log and nothing more].
	OnLost func(partition int)
	// ForwardTimeout bounds a forwarded request [10s].
	ForwardTimeout time.Duration
}

// ForwardedHeader marks a request one node forwarded to another.
const ForwardedHeader = "Onsale-Forwarded"

const bucket = "onsale_leases"

// Fleet is this node's view of the fleet: its lease, the owners of the
// others, and the router.
type Fleet struct {
	o     Options
	kv    natsjs.KeyValue // watched, on Conn
	lease natsjs.KeyValue // taken and renewed, on LeaseConn
	start time.Time       // monotonic base of validUntil

	local      atomic.Int64 // the partition this node owns; -1 none
	validUntil atomic.Int64 // nanoseconds after start
	owners     atomic.Pointer[[]string]

	clientsMu sync.Mutex
	clients   map[string]*fasthttp.HostClient

	catMu    sync.Mutex // guards catCache
	catCache map[string]cachedPage

	renewals, renewalsSlow atomic.Int64 // renew's count, and of those slower than a twelfth of the lease

	stop   context.CancelFunc
	ctx    context.Context
	ended  sync.WaitGroup
	leased bool
}

// Join opens the lease bucket and starts watching it.
func Join(ctx context.Context, o Options) (*Fleet, error) {
	if o.Conn == nil || o.Addr == "" {
		return nil, errors.New("fleet: Options.Conn and Options.Addr are required")
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.Lease <= 0 {
		o.Lease = 3 * time.Second
	}
	if o.Replicas <= 0 {
		o.Replicas = 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = 10 * time.Second
	}
	js, err := natsjs.New(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
		Bucket: bucket, TTL: o.Lease, Replicas: o.Replicas, Storage: natsjs.FileStorage, History: 1,
		Description: "onsale partition leases: p<N> → owner address",
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: cannot open the lease bucket: %w", err)
	}
	f := &Fleet{o: o, kv: kv, lease: kv, start: time.Now(), clients: map[string]*fasthttp.HostClient{},
		catCache: map[string]cachedPage{}}
	if o.LeaseConn != nil {
		ljs, err := natsjs.New(o.LeaseConn)
		if err == nil {
			f.lease, err = ljs.KeyValue(ctx, bucket)
		}
		if err != nil {
			return nil, fmt.Errorf("fleet: cannot open the lease bucket on the lease's connection: %w", err)
		}
	}
	f.local.Store(-1)
	empty := make([]string, o.Partitions)
	f.owners.Store(&empty)
	f.ctx, f.stop = context.WithCancel(context.Background())
	w, err := kv.WatchAll(f.ctx)
	if err != nil {
		f.stop()
		return nil, fmt.Errorf("fleet: cannot watch the lease bucket: %w", err)
	}
	f.ended.Go(func() { f.watch(w) })
	return f, nil
}

// Close stops renewing (the lease then expires within Options.Lease) and
// watching.
func (f *Fleet) Close() {
	f.stop()
	f.ended.Wait()
}

// Partitions is the fleet's partition count.
func (f *Fleet) Partitions() int { return f.o.Partitions }

// PartitionOf is the partition of a sale. It mixes the id's FNV-1a hash
// before taking the modulo, so that it is independent of the engine's
// shard choice (the same hash modulo the shard count).
func PartitionOf(saleID []byte, partitions int) int {
	h := uint32(2166136261)
	for _, c := range saleID {
		h ^= uint32(c)
		h *= 16777619
	}
	return partitionOfHash(h, partitions) // providers.go
}

// Acquire waits until this node holds the lease of a partition, trying
// Options.Prefer first, and returns it. The lease is renewed until Close or
// until it is lost (Options.OnLost). A standby tries every AcquireEvery.
func (f *Fleet) Acquire(ctx context.Context) (int, error) {
	tick := time.NewTicker(f.AcquireEvery())
	defer tick.Stop()
	for {
		p, ok, err := f.TryAcquire(ctx)
		if ok || err != nil {
			return p, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// AcquireEvery is how often a standby tries to take a lease: a tenth of a
// second, or a sixth of the lease if that is shorter. Trying is one
// refused create per partition, which the bucket's leader answers without
// replicating anything, so trying often costs little; and it is what a
// takeover waits for after the lease has expired.
func (f *Fleet) AcquireEvery() time.Duration { return min(f.o.Lease/6, 100*time.Millisecond) }

// TryAcquire tries once to take a partition's lease, Options.Prefer first:
// ok tells whether it did (then as Acquire).
func (f *Fleet) TryAcquire(ctx context.Context) (p int, ok bool, err error) {
	if f.leased {
		return 0, false, errors.New("fleet: Acquire called twice")
	}
	value := []byte(f.o.Addr)
	for i := range f.o.Partitions {
		p := (f.o.Prefer + i) % f.o.Partitions
		began := time.Since(f.start)
		rev, err := f.lease.Create(ctx, leaseKey(p), value)
		if err != nil {
			continue // held by another node, or the bucket is not answering
		}
		f.validUntil.Store(int64(began + f.o.Lease*3/4))
		f.local.Store(int64(p))
		f.leased = true
		f.ended.Go(func() { f.renew(p, value, rev) })
		f.o.Logger.Info("fleet: lease taken", "partition", p, "lease", f.o.Lease.String())
		return p, true, nil
	}
	return 0, false, ctx.Err()
}

// Valid reports whether this node certainly still holds the lease of
// partition p.
func (f *Fleet) Valid(p int) bool {
	return f.local.Load() == int64(p) && int64(time.Since(f.start)) < f.validUntil.Load()
}

func (f *Fleet) renew(p int, value []byte, rev uint64) {
	every := f.o.Lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		began := time.Since(f.start)
		ctx, cancel := context.WithTimeout(f.ctx, every)
		next, err := f.lease.Update(ctx, leaseKey(p), value, rev)
		cancel()
		if f.ctx.Err() != nil {
			return
		}
		took := time.Since(f.start) - began
		f.renewals.Add(1)
		if took > f.o.Lease/12 {
			// Late by a quarter of the margin a renewal has (from a third of
			// the lease to three quarters): worth knowing before it is lost.
			f.renewalsSlow.Add(1)
			f.o.Logger.Warn("fleet: lease renewal slow", "partition", p, "took_ms", took.Milliseconds(),
				"margin_ms", (f.o.Lease*3/4 - every).Milliseconds())
		}
		if err == nil && int64(began) < f.validUntil.Load() {
			rev = next
			f.validUntil.Store(int64(began + f.o.Lease*3/4))
			continue
		}
		// Lost, or renewed too late to know that nobody took it meanwhile:
		// the revision check would have failed if someone had, but the
		// answers given between validUntil and now were refused anyway.
		if err == nil {
			err = errors.New("renewed after the lease's safe window")
		}
		f.local.Store(-1)
		f.o.Logger.Error("fleet: lease lost; this node stops answering for its partition", "partition", p, "err", err)
		if f.o.OnLost != nil {
			f.o.OnLost(p)
		}
		return
	}
}

func leaseKey(p int) string { return "p" + strconv.Itoa(p) }

// watch keeps the owner table: a put names the owner; an expiry is not
// reported, so a dead owner stays named until the next one takes over
// (forwarding to it fails with 503 meanwhile).
func (f *Fleet) watch(w natsjs.KeyWatcher) {
	defer w.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // the initial values are all in
			}
			p, err := strconv.Atoi(e.Key()[1:])
			if err != nil || p < 0 || p >= f.o.Partitions {
				continue
			}
			next := append([]string(nil), *f.owners.Load()...)
			next[p] = ""
			if e.Operation() == natsjs.KeyValuePut {
				next[p] = string(e.Value())
			}
			f.owners.Store(&next)
		}
	}
}

// Renewals counts the lease's renewals so far, and those that took longer
// than a twelfth of the lease (each also logged).
func (f *Fleet) Renewals() (all, slow int64) { return f.renewals.Load(), f.renewalsSlow.Load() }

// Owner is the address of partition p's owner as last seen; "" if none.
func (f *Fleet) Owner(p int) string { return (*f.owners.Load())[p] }

var (
	prefixSales       = []byte("/v1/sales/")
	prefixAdminSales  = []byte("/v1/admin/sales/")
	prefixOrders      = []byte("/v1/orders/")
	prefixAdminOrders = []byte("/v1/admin/orders/")
)

// Route is httpapi.Config.Route: it answers (forwards or refuses) what
// this node must not serve itself.
func (f *Fleet) Route(ctx *fasthttp.RequestCtx) bool {
	if v := ctx.Request.Header.Peek(FanoutHeader); len(v) > 0 {
		// one part of another node's fan-out: this node's partition only
		if p, err := strconv.Atoi(string(v)); err == nil && int64(p) == f.local.Load() && f.Valid(p) {
			return false
		}
		httpapi.WriteUnavailable(ctx, "the partition is moving between nodes; retry")
		return true
	}
	if handled, ok := f.spanning(ctx); ok { // fanout.go
		return handled
	}
	p, ok := f.partitionOf(ctx.Path())
	if !ok {
		return false // health, readiness, metrics, the API description: this node's own
	}
	return f.serve(ctx, p)
}

// partitionOf names the partition a path belongs to; ok is false for the
// node's own routes.
func (f *Fleet) partitionOf(path []byte) (int, bool) {
	var sale []byte
	switch {
	case bytes.HasPrefix(path, prefixSales):
		sale = segment(path[len(prefixSales):])
	case bytes.HasPrefix(path, prefixAdminSales):
		sale = segment(path[len(prefixAdminSales):])
	case bytes.HasPrefix(path, prefixOrders):
		sale = saleOfOrder(segment(path[len(prefixOrders):]))
	case bytes.HasPrefix(path, prefixAdminOrders):
		sale = saleOfOrder(segment(path[len(prefixAdminOrders):]))
	case bytes.HasPrefix(path, []byte("/v1/")):
		return 0, true // spans sales or names none: the home partition
	default:
		return 0, false
	}
	if len(sale) == 0 {
		return 0, true
	}
	return PartitionOf(sale, f.o.Partitions), true
}

func segment(rest []byte) []byte {
	if i := bytes.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// saleOfOrder: order ids are "<sale id>.<key>" and sale ids have no '.'.
func saleOfOrder(id []byte) []byte {
	if i := bytes.LastIndexByte(id, '.'); i > 0 {
		return id[:i]
	}
	return id
}

// forward proxies the request to owner and copies its answer back.
func (f *Fleet) forward(ctx *fasthttp.RequestCtx, owner string) {
	c := f.client(owner)
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	ctx.Request.CopyTo(req)
	req.Header.Set(ForwardedHeader, f.o.Addr)
	req.SetHost(owner)
	if err := c.DoTimeout(req, &ctx.Response, f.o.ForwardTimeout); err != nil {
		ctx.Response.Reset()
		httpapi.WriteUnavailable(ctx, "the node serving the sale's partition did not answer; retry")
	}
}

func (f *Fleet) client(addr string) *fasthttp.HostClient {
	f.clientsMu.Lock()
	defer f.clientsMu.Unlock()
	c := f.clients[addr]
	if c == nil {
		c = &fasthttp.HostClient{Addr: addr, MaxConns: 1024, ReadTimeout: f.o.ForwardTimeout,
			WriteTimeout: f.o.ForwardTimeout, MaxIdleConnDuration: 30 * time.Second}
		f.clients[addr] = c
	}
	return c
}
