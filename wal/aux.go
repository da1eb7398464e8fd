package wal

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The aux keyspace is for work that runs beside the shards and keeps its
// own progress (httpapi/notify's outbox): keys under prefix 'N', values
// with a CRC-32C like every other value. It shares the log's Pebble, so
// its writes ride on the same WAL and a backup copies them with the log,
// and it never touches a shard's entries or snapshots.
//
//	'N' key → crc32c(4) | value
const prefixAux = 'N'

// AuxOp is one write of AuxWrite: Value nil deletes Key; End not nil
// deletes every key in [Key, End).
type AuxOp struct {
	Key, Value, End []byte
}

// AuxWrite applies ops as one batch; sync makes it durable before it
// returns (without sync it reaches the disk with the next synced write).
func (l *Log) AuxWrite(ops []AuxOp, sync bool) error {
	b := l.db.NewBatch()
	defer b.Close()
	for _, op := range ops {
		var err error
		switch {
		case op.End != nil:
			err = b.DeleteRange(auxKey(op.Key), auxKey(op.End), nil)
		case op.Value == nil:
			err = b.Delete(auxKey(op.Key), nil)
		default:
			v := make([]byte, crcLen+len(op.Value))
			putValue(v, op.Value)
			err = b.Set(auxKey(op.Key), v, nil)
		}
		if err != nil {
			return fmt.Errorf("wal: cannot write aux keys: %w", err)
		}
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := b.Commit(wo); err != nil {
		return fmt.Errorf("wal: cannot write aux keys: %w", err)
	}
	return nil
}

// AuxScan calls fn for every aux key in [from, to) in key order (to nil:
// to the end of the keyspace), at most limit of them (0: all). The slices
// are valid only during the call.
func (l *Log) AuxScan(from, to []byte, limit int, fn func(key, value []byte) error) error {
	upper := []byte{prefixAux + 1}
	if to != nil {
		upper = auxKey(to)
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: auxKey(from), UpperBound: upper})
	if err != nil {
		return fmt.Errorf("wal: cannot read aux keys: %w", err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid() && (limit == 0 || n < limit); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("wal: cannot read aux keys: %w", err)
		}
		body, err := checked(v)
		if err != nil {
			return fmt.Errorf("wal: aux key %q: %w", it.Key()[1:], err)
		}
		if err := fn(it.Key()[1:], body); err != nil {
			return err
		}
		n++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("wal: cannot read aux keys: %w", err)
	}
	return nil
}

func auxKey(k []byte) []byte { return append([]byte{prefixAux}, k...) }
