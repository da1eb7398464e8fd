package wal

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// An fdatasync that only overwrites blocks the file already has written
// costs about half the time and two thirds of the CPU of one that appends
// or fills space fallocate reserved (go run ./bench/cmd/onsale-fsync): the
// latter also commits the file system's journal (a new size, converted
// extents). Pebble overwrites only when it recycles a WAL file, which
// happens after a memtable flush, so with 64 MiB memtables a log written
// since start-up never does. prefillFS makes every new WAL overwrite: a
// goroutine per WAL file writes zeros a window ahead of Pebble's writes and
// syncs them, so by the time Pebble's record lands there its block is
// allocated, written and inside the file's size.
//
// Zeros are what Pebble finds past the end of a preallocated or recycled
// WAL and reads as the end of the log (a zeroed chunk); checkNewestLog
// (tail.go) reads them the same way. The zero tail is at most window
// bytes, so replaying and checking the newest WAL reads little more than
// before.
//
// The zeros never land on Pebble's data: they are written only at or past
// the end of Pebble's writes, under the mutex Pebble's writes take, and not
// at all once the file is closed (a closed WAL file may be renamed and
// rewritten as a recycled one), and Close cuts them off again. It runs on
// the real disk only (Options.FS nil or vfs.Default); tests turn it on
// for Pebble's in-memory file systems with Options.prefillWindow. Prefilling is only an optimisation: on any
// error of its own it stops, and Pebble's writes and syncs go on as they
// would have.
type prefillFS struct {
	vfs.FS
	window int64 // zeros kept ahead of Pebble's writes
}

const (
	prefillWindow    = 1 << 20   // zeros ahead of Pebble: 0.3 s of log at 10k purchases/s
	prefillChunk     = 32 << 10  // one WriteAt under the mutex; a Pebble write waits at most for one
	prefillSyncEvery = 256 << 10 // zeros synced in steps of this size
)

// Unwrap returns the file system prefillFS writes through.
func (fs prefillFS) Unwrap() vfs.FS { return fs.FS }

// Create prefills new WAL files; every other file is created as it is.
func (fs prefillFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, err, name)
}

// ReuseForWrite prefills a recycled WAL file too: its old records are
// overwritten with zeros ahead of Pebble's, which costs no allocation.
func (fs prefillFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, err, newname)
}

func (fs prefillFS) wrap(f vfs.File, err error, name string) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	p := &prefillFile{File: f, window: fs.window, done: make(chan struct{})}
	p.more = sync.NewCond(&p.mu)
	go func() {
		defer close(p.done)
		p.fill()
	}()
	return p, nil
}

type prefillFile struct {
	vfs.File
	window int64
	done   chan struct{} // closed when fill has returned

	mu      sync.Mutex
	more    *sync.Cond // Pebble wrote past half the window, or the file is closing
	written int64      // end of Pebble's writes (it only appends, with Write)
	filled  int64      // end of the zeros written
	closing bool
}

// Write appends Pebble's bytes. Their range is claimed before they are
// written, so fill (which writes only past it, under the mutex) cannot
// overlap them; Pebble waits for the mutex at most one chunk of zeros.
func (f *prefillFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.written += int64(len(p))
	wake := f.filled-f.written < f.window/2
	f.mu.Unlock()
	if wake {
		f.more.Signal()
	}
	return f.File.Write(p)
}

// Close stops the filling, waits for fill to return (it may be in a sync
// of zeros, which must not run on a closed file), cuts the zeros off (a
// closed WAL is replayed, checked and copied into backups whole), and
// closes the file.
func (f *prefillFile) Close() error {
	f.mu.Lock()
	f.closing = true
	filled, written := f.filled, f.written
	f.mu.Unlock()
	f.more.Signal()
	<-f.done
	var err error
	if t, ok := f.File.(interface{ Truncate(int64) error }); ok && filled > written {
		err = t.Truncate(written)
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// fill keeps zeros up to window bytes ahead of Pebble's writes, synced.
func (f *prefillFile) fill() {
	zeros := make([]byte, prefillChunk)
	var unsynced int64
	for {
		f.mu.Lock()
		for !f.closing && unsynced == 0 && f.filled-f.written >= f.window {
			f.more.Wait()
		}
		if f.closing {
			f.mu.Unlock()
			return
		}
		if f.filled-f.written >= f.window || unsynced >= prefillSyncEvery {
			f.mu.Unlock()
			if f.File.SyncData() != nil {
				return
			}
			unsynced = 0
			continue
		}
		at := max(f.filled, f.written)
		_, err := f.File.WriteAt(zeros, at)
		if err == nil {
			f.filled = at + prefillChunk
			unsynced += prefillChunk
		}
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}
