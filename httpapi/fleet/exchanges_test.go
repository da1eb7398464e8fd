package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
	"github.com/onsale/onsale/wal/jetstream/jstest"
)

// TestExchangeSteps: a step asked over NATS of the partition's owner runs
// on its engine; the engine's refusal comes back as a *engine.Rejection
// with its code (a refused step (b) undoes an exchange), while a
// malformed step and a step nobody answers (the owner's lease not valid)
// are ErrStopped, never a refusal.
func TestExchangeSteps(t *testing.T) {
	c := jstest.Start(t, 3, false)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	log, err := wal.Open("wal", wal.Options{FS: vfs.NewMem(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFatal: func(msg string) { panic("wal: " + msg) }})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	eng, err := engine.Open(engine.Config{Journal: log, Shards: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	var valid atomic.Bool
	valid.Store(true)
	p := PartitionOf([]byte("s1"), 2)
	if err := ServeExchanges(nc, p, valid.Load, eng); err != nil {
		t.Fatal(err)
	}
	x := &exchanges{Conn: nc, Partitions: 2}
	ctx := context.Background()

	_, err = x.ExchangeStep(ctx, "s1", engine.ExchangeStep{Op: "check", Order: "aaaaaaaaaaaaaaaaaaaaaaaaaa", OtherSale: "s2"})
	var rej *engine.Rejection
	if !errors.As(err, &rej) || rej.Code != engine.CodeUnknownSale {
		t.Fatalf("check of an unknown sale: %v, want the engine's unknown_sale", err)
	}
	if r, err := x.ExchangeStep(ctx, "s1", engine.ExchangeStep{Op: "list"}); err != nil || len(r.Open) != 0 {
		t.Fatalf("list: %+v %v", r, err)
	}
	if _, err := x.ExchangeStep(ctx, "s1", engine.ExchangeStep{Op: "nope"}); !errors.Is(err, engine.ErrStopped) || errors.As(err, &rej) {
		t.Fatalf("a malformed step: %v, want ErrStopped and no refusal", err)
	}
	valid.Store(false)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := x.ExchangeStep(short, "s1", engine.ExchangeStep{Op: "list"}); !errors.Is(err, engine.ErrStopped) || errors.As(err, &rej) {
		t.Fatalf("a step with no owner: %v, want ErrStopped and no refusal", err)
	}
}
