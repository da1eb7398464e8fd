package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Backups. A Pebble checkpoint is a consistent copy of the log taken while
// it is written: every write committed before it started is in it (an
// acknowledged append was synced, so committed), and each shard's log in it
// is a prefix of the live one. Tables are hard-linked when the destination
// is on the same filesystem (they are immutable) and copied otherwise; the
// WAL and manifest are copied. A restore also needs what the data directory
// holds beside the log (the secrets file whose data key signs tickets and
// hashes credentials, payment providers' key files), so Backup copies those
// too, with their modes.

// ErrBackupExists is returned when the destination of a backup exists.
var ErrBackupExists = errors.New("wal: the backup destination already exists; name a new directory")

// ErrBackupInsideData is returned when the destination of a backup lies
// inside the data directory, or contains it.
var ErrBackupInsideData = errors.New("wal: the backup destination must lie outside the data directory")

// BackupInfo describes a copy written by Backup.
type BackupInfo struct {
	Path      string   // the destination, absolute
	SizeBytes int64    // bytes of its files (hard-linked tables counted in full)
	Positions []uint64 // per shard: the last log position (seq) the copy holds
}

// Backup writes a consistent copy of the data directory dataDir, whose log
// is l (in a directory under dataDir), to dest, a directory that must not
// exist yet (its parents are created): dest/<log dir> is a checkpoint of the
// log, and every other regular file of dataDir is copied with its mode.
// Starting on dest gives the state of the log at the checkpoint. A failed
// backup removes what it wrote.
func (l *Log) Backup(dataDir, dest string) (BackupInfo, error) {
	data, err := filepath.Abs(dataDir)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot back up: %w", err)
	}
	to, err := filepath.Abs(dest)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot back up: %w", err)
	}
	logDir, err := filepath.Abs(l.dir)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot back up: %w", err)
	}
	rel, err := filepath.Rel(data, logDir)
	if err != nil || !filepath.IsLocal(rel) {
		return BackupInfo{}, fmt.Errorf("wal: cannot back up: the log %s is not inside the data directory %s", logDir, data)
	}
	if within(to, data) || within(data, to) {
		return BackupInfo{}, ErrBackupInsideData
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot back up: %w", err)
	}
	if err := os.Mkdir(to, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return BackupInfo{}, ErrBackupExists
		}
		return BackupInfo{}, fmt.Errorf("wal: cannot back up: %w", err)
	}
	info, err := l.backupInto(data, logDir, to, rel)
	if err != nil {
		os.RemoveAll(to)
		return BackupInfo{}, err
	}
	return info, nil
}

func (l *Log) backupInto(data, logDir, to, rel string) (BackupInfo, error) {
	// WithFlushedWAL syncs the WAL first, so that writes committed without
	// sync (a metadata write of a -NoSync benchmark) are in the copy too;
	// synced ones are in any case.
	if err := l.db.Checkpoint(filepath.Join(to, rel), pebble.WithFlushedWAL()); err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot checkpoint the log: %w", err)
	}
	if err := copyBeside(data, logDir, to); err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot copy the data directory: %w", err)
	}
	info := BackupInfo{Path: to}
	// Open the copy once, writable: Pebble replays the WAL it holds and
	// writes it out as a table. A finished copy then holds its data in
	// tables, whose every block is checksummed, rather than in a WAL, whose
	// bad chunk near the end Pebble takes for a torn write and drops
	// silently (tail.go). Verify finds any flipped byte.
	copyLog, err := Open(filepath.Join(to, rel), Options{Logger: l.plog.log})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("wal: cannot open the copy: %w", err)
	}
	info.Positions, err = copyLog.Positions()
	if cerr := copyLog.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return BackupInfo{}, err
	}
	filepath.WalkDir(to, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				info.SizeBytes += fi.Size()
			}
		}
		return nil
	})
	return info, nil
}

// copyBeside copies every regular file of data outside logDir into the
// same place under to, with its mode, synced; temporary files (*.tmp, a
// write under way) are left out.
func copyBeside(data, logDir, to string) error {
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == logDir {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(data, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		switch {
		case path == data:
			return nil
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case !d.Type().IsRegular() || strings.HasSuffix(path, ".tmp"):
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return copyFileSynced(path, target, fi.Mode().Perm())
	})
	if err != nil {
		return err
	}
	return syncDir(to)
}

func copyFileSynced(from, to string, perm fs.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// within reports whether path is dir or lies under it; both are absolute
// and clean.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// Positions returns, for each shard of the layout, the last position its
// log holds: the seq of its newest entry, or of its snapshot when the log
// after it is empty.
func (l *Log) Positions() ([]uint64, error) {
	shards, err := l.Layout()
	if err != nil {
		return nil, err
	}
	out := make([]uint64, shards)
	for shard := range shards {
		seq, _, err := l.snapshotSeq(shard)
		if err != nil {
			return nil, err
		}
		lower, upper := make([]byte, logKeyLen), make([]byte, logKeyLen)
		putLogKey(lower, shard, 0)
		putLogKey(upper, shard+1, 0)
		it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, fmt.Errorf("wal: cannot read shard %d: %w", shard, err)
		}
		if it.Last() && len(it.Key()) == logKeyLen {
			seq = max(seq, binary.BigEndian.Uint64(it.Key()[3:]))
		}
		err = it.Close()
		if err != nil {
			return nil, fmt.Errorf("wal: cannot read shard %d: %w", shard, err)
		}
		out[shard] = seq
	}
	return out, nil
}

// snapshotSeq returns the seq of the shard's snapshot without reading
// it; found is false if the shard has none.
func (l *Log) snapshotSeq(shard int) (seq uint64, found bool, err error) {
	m, closer, err := l.db.Get(manifestKey(shard))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("wal: cannot read snapshot of shard %d: %w", shard, err)
	}
	defer closer.Close()
	if len(m) != 12 {
		return 0, false, fmt.Errorf("wal: snapshot manifest of shard %d is corrupt", shard)
	}
	return binary.BigEndian.Uint64(m), true, nil
}

// Check reads every key and value of the log, so that Pebble verifies the
// checksum of every block, and verifies ours on every entry and snapshot
// chunk. It returns the number of keys read. Replaying the entries into
// state (the engine's recovery) is the rest of a verification.
func (l *Log) Check() (keys int, err error) {
	it, err := l.db.NewIter(nil)
	if err != nil {
		return 0, fmt.Errorf("wal: cannot read the log: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return keys, fmt.Errorf("wal: key %x: %w", it.Key(), err)
		}
		if k := it.Key(); len(k) > 0 && (k[0] == prefixLog || k[0] == prefixSnapshot || k[0] == prefixArchive) {
			if _, err := checked(v); err != nil {
				return keys, fmt.Errorf("wal: key %x: %w", k, err)
			}
		}
		keys++
	}
	if err := it.Error(); err != nil {
		return keys, fmt.Errorf("wal: cannot read the log: %w", err)
	}
	return keys, nil
}
