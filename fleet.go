package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi"
	"github.com/onsale/onsale/httpapi/fleet"
	"github.com/onsale/onsale/wal/jetstream"
)

// fleetOptions are the flags of a fleet node (README, "Running a fleet").
type fleetOptions struct {
	natsURL    string
	partitions int
	prefer     int
	lease      time.Duration
	advertise  string
	replicas   int
	notify     bool
}

func fleetFlags(env *envDefaults, f *fleetOptions) {
	env.str(&f.natsURL, "nats", "ONSALE_NATS", "", "NATS URLs of a JetStream cluster, comma-separated: run as a fleet node, the log in JetStream instead of -data's Pebble [single node]")
	env.int(&f.partitions, "fleet-partitions", "ONSALE_FLEET_PARTITIONS", 4, "sale partitions of the fleet, each served by one node; the same on every node, never changed")
	env.int(&f.prefer, "fleet-partition", "ONSALE_FLEET_PARTITION", 0, "the partition this node tries to own first")
	env.duration(&f.lease, "fleet-lease", "ONSALE_FLEET_LEASE", 3*time.Second, "a partition's lease: a node that stops renewing it loses its sales this long after its last renewal, and another node takes them over")
	env.str(&f.advertise, "fleet-advertise", "ONSALE_FLEET_ADVERTISE", "", "host:port at which the other nodes reach this one [-addr]")
	env.bool(&f.notify, "fleet-notify", "ONSALE_FLEET_NOTIFY", true, "deliver notifications (webhooks, email) on this fleet node, its outbox in JetStream")
	env.int(&f.replicas, "nats-replicas", "ONSALE_NATS_REPLICAS", 3, "copies JetStream keeps of the log, snapshots and leases (1 for a single test server)")
}

func checkFleet(o *options, check func(ok bool, flagName, format string, args ...any)) {
	f := &o.fleet
	if f.natsURL == "" {
		return
	}
	check(f.partitions >= 1 && f.partitions <= 1024, "fleet-partitions", "must be 1 to 1024, not %d", f.partitions)
	check(f.prefer >= 0 && f.prefer < max(f.partitions, 1), "fleet-partition", "must be 0 to -fleet-partitions - 1, not %d", f.prefer)
	check(f.lease >= 500*time.Millisecond, "fleet-lease", "must be at least 500ms, not %s", f.lease)
	check(f.replicas == 1 || f.replicas == 3 || f.replicas == 5, "nats-replicas", "must be 1, 3 or 5, not %d", f.replicas)
	if f.advertise == "" {
		f.advertise = o.addr
	}
	_, port, err := net.SplitHostPort(f.advertise)
	check(err == nil && port != "0", "fleet-advertise", "must be the host:port the other nodes reach (not port 0), not %q", f.advertise)
}

// fleetNode is what a fleet node adds to an app: the NATS connection, the
// lease and router (httpapi/fleet), the shared user store and webhook
// endpoints, and once it owns a partition, that partition's outbox.
type fleetNode struct {
	o  fleetOptions
	nc *nats.Conn
	// logConn carries the partition's log (recover): not the lease's nc.
	logConn  *nats.Conn
	fleet    *fleet.Fleet
	users    *fleet.Users
	webhooks *fleet.Webhooks
	outbox   *fleet.Outbox // set by recover
	logger   *slog.Logger
	// acquiring ends Acquire when the app stops before it owns a partition.
	acquiring       context.Context
	cancelAcquiring context.CancelFunc
}

func joinFleet(ctx context.Context, o options, logger *slog.Logger) (*fleetNode, error) {
	nc, err := nats.Connect(o.fleet.natsURL, nats.Name("onsale "+o.fleet.advertise), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", o.fleet.natsURL, err)
	}
	n := &fleetNode{o: o.fleet, nc: nc, logger: logger}
	// JetStream answers "temporarily unavailable" while a server rejoins
	// or its meta leader is elected: try for a while before giving up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n.fleet, err = fleet.Join(ctx, fleet.Options{
			Conn: nc, Partitions: o.fleet.partitions, Addr: o.fleet.advertise, Lease: o.fleet.lease,
			Prefer: o.fleet.prefer, Replicas: o.fleet.replicas, Logger: logger,
			OnLost: func(p int) {
				// Requests for the partition are refused already (Route); the
				// engine's memory may hold what the new owner never saw, so
				// the process ends and starts again as a standby.
				logger.Error("lease lost: exiting", "partition", p)
				os.Exit(3)
			},
		})
		if err == nil {
			n.users, err = fleet.OpenUsers(ctx, nc, o.fleet.replicas)
			if err == nil {
				n.webhooks, err = fleet.OpenWebhooks(ctx, nc, o.fleet.replicas)
			}
			if err != nil {
				n.fleet.Close()
			}
		}
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		logger.Warn("fleet: JetStream not ready; trying again", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	n.acquiring, n.cancelAcquiring = context.WithCancel(context.Background())
	return n, nil
}

// route is httpapi.Config.Route: nil on a single node.
func (n *fleetNode) route() func(*fasthttp.RequestCtx) bool {
	if n == nil {
		return nil
	}
	return n.fleet.Route
}

// recover waits for a partition's lease, then opens its journal (which
// fences the previous owner) and replays it.
func (n *fleetNode) recover(a *app) recovery {
	start := time.Now()
	p, err := n.fleet.Acquire(n.acquiring)
	if err != nil {
		return recovery{err: err}
	}
	a.logger.Info("fleet: partition acquired", "partition", p, "waited_ms", time.Since(start).Milliseconds())
	start = time.Now()
	// The log has a connection of its own: a takeover streams the
	// partition's snapshot and log through it, and a lease renewal queued
	// behind them on the lease's connection came too late, so that the
	// node lost the lease it was recovering for (bench -failover, 1M orders).
	if n.logConn, err = nats.Connect(n.o.natsURL, nats.Name("onsale log "+n.o.advertise), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second)); err != nil {
		return recovery{err: fmt.Errorf("cannot connect to NATS at %s: %w", n.o.natsURL, err)}
	}
	j, err := jetstream.Open(context.Background(), jetstream.Options{Conn: n.logConn, Name: fmt.Sprintf("onsale_p%d", p),
		Replicas: n.o.replicas})
	if err != nil {
		return recovery{err: err}
	}
	var tap engine.OutboxTap
	if n.o.notify {
		if n.outbox, err = fleet.OpenOutbox(context.Background(), n.nc, p, n.o.replicas,
			func() bool { return n.fleet.Valid(p) }, j); err != nil {
			return recovery{err: err}
		}
		tap = a.notifier
	}
	eng, err := engine.Open(engine.Config{
		Journal: j, Shards: a.o.shards, BatchMax: a.o.batchMax, InboxMax: a.o.inboxMax,
		TickInterval: a.o.tick, SyncGatherMax: orOff(a.o.logSyncGather), Logger: a.logger, Metrics: a.set,
		QueueSeedKey: a.queueSeedKey,
		Outbox:       tap,
	})
	if err != nil {
		return recovery{err: err}
	}
	logRecovery(a.logger, eng, time.Since(start))
	a.running.Store(eng)
	if !n.o.notify {
		return recovery{eng: eng}
	}
	// Notifications: this partition's, with ids no other partition's log
	// gives; the webhook endpoints are partition 0's (the home partition
	// serves /v1/admin/webhooks), shared through the onsale_fleet bucket.
	endpoints := n.webhooks.List
	if p == 0 {
		endpoints = n.webhooks.Publish(eng.Webhooks)
	} else if err := n.webhooks.Watch(n.acquiring, a.notifier.RefreshEndpoints); err != nil {
		eng.Close()
		return recovery{err: err}
	}
	a.notifier.ForPartition(fmt.Sprintf("p%d_", p), endpoints)
	return recovery{eng: eng}
}

func (n *fleetNode) stopAcquiring() {
	if n != nil {
		n.cancelAcquiring()
	}
}

func (n *fleetNode) close() {
	if n == nil {
		return
	}
	n.cancelAcquiring()
	n.fleet.Close()
	if n.logConn != nil {
		n.logConn.Close()
	}
	n.nc.Close()
}

// backupAnswer is POST /v1/admin/backup on a fleet node: the fleet's data
// is in JetStream, whose own backup (nats stream backup, a consistent copy
// of one stream at a time, restored with nats stream restore) is what an
// operator of a JetStream cluster runs, so the answer names the streams:
// each partition's shard logs and snapshot store and notification outbox,
// the accounts and the shared webhook endpoints. The leases are not
// worth keeping: they expire within a lease.
func (n *fleetNode) backupAnswer(shards int) error {
	var streams []string
	for p := range n.o.partitions {
		for s := range shards {
			streams = append(streams, fmt.Sprintf("onsale_p%d_%d", p, s))
		}
		streams = append(streams, fmt.Sprintf("OBJ_onsale_p%d_snap", p))
		if n.o.notify {
			streams = append(streams, fmt.Sprintf("KV_onsale_outbox_p%d", p))
		}
	}
	streams = append(streams, "KV_onsale_users", "KV_onsale_fleet")
	return fmt.Errorf("%w: back it up with `nats stream backup <stream> <dir>` for each of its streams (%s), "+
		"restored into a JetStream cluster with `nats stream restore <dir>` (README, \"Running a fleet\")",
		httpapi.ErrBackupInJetStream, strings.Join(streams, ", "))
}
