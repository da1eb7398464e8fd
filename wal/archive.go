package wal

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The archive keyspace holds what the engine moved out of memory (finished
// sales): opaque keys the engine chooses, under their own prefix byte.
//
//	'A' key  → crc32c(4) | value
//
// Archive records are written only together with log entries, in the same
// Pebble batch (AppendArchive), so that a crash keeps both or neither: the
// log entry that says "archived" never exists without the records, and the
// records of an archive whose entry was lost are never referred to. They are
// not touched by snapshots, log truncation or Reset.

// AppendArchive is Append whose batch also sets the archive records
// keys[i] = values[i]. It satisfies engine.ArchiveStore.
func (l *Log) AppendArchive(shard int, firstSeq uint64, entries, keys, values [][]byte) (wait func() error, err error) {
	if len(keys) != len(values) {
		return nil, fmt.Errorf("wal: %d archive keys and %d values", len(keys), len(values))
	}
	return l.appendWith(shard, firstSeq, entries, keys, values)
}

func putArchive(b *pebble.Batch, keys, values [][]byte) error {
	for i, k := range keys {
		op := b.SetDeferred(1+len(k), crcLen+len(values[i]))
		op.Key[0] = prefixArchive
		copy(op.Key[1:], k)
		putValue(op.Value, values[i])
		if err := op.Finish(); err != nil {
			return err
		}
	}
	return nil
}

// ArchiveDeleteRange deletes every archive record whose key is in
// [start, end), in one atomic write: after a crash all of them are there or
// none. It is not synced: it reaches the disk with the next synced write
// (and a deletion lost by a crash is asked again). It satisfies
// engine.ArchivePruner.
func (l *Log) ArchiveDeleteRange(start, end []byte) error {
	b := l.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(append([]byte{prefixArchive}, start...), append([]byte{prefixArchive}, end...), nil); err != nil {
		return fmt.Errorf("wal: cannot delete archive records: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("wal: cannot delete archive records: %w", err)
	}
	return nil
}

// ArchiveGet returns the archive record at key.
func (l *Log) ArchiveGet(key []byte) ([]byte, bool, error) {
	v, closer, err := l.db.Get(append([]byte{prefixArchive}, key...))
	if err == pebble.ErrNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("wal: cannot read archive: %w", err)
	}
	defer closer.Close()
	body, err := checked(v)
	if err != nil {
		return nil, false, fmt.Errorf("wal: archive record %x: %w", key, err)
	}
	return bytes.Clone(body), true, nil
}

// ArchiveScan calls fn for every archive record whose key starts with
// prefix and is >= start (nil: from the first), in key order, until fn
// returns false or an error. Key and value are valid only during the call.
func (l *Log) ArchiveScan(prefix, start []byte, fn func(key, value []byte) (bool, error)) error {
	lower := append([]byte{prefixArchive}, prefix...)
	upper := prefixEnd(lower)
	from := lower
	if start != nil {
		from = append([]byte{prefixArchive}, start...)
	}
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("wal: cannot read archive: %w", err)
	}
	defer it.Close()
	for it.SeekGE(from); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("wal: cannot read archive: %w", err)
		}
		body, err := checked(v)
		if err != nil {
			return fmt.Errorf("wal: archive record %x: %w", it.Key(), err)
		}
		more, err := fn(it.Key()[1:], body)
		if err != nil || !more {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("wal: cannot read archive: %w", err)
	}
	return nil
}

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
