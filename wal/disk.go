package wal

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Free disk space. Open refuses to start without room to open the log:
// Pebble replays every WAL file into memtables and writes them out as
// tables before Open returns, then writes a manifest, an options file and
// a new WAL; without room it fails in the middle of that, and its failed
// flush is retried in a loop (logger.go). DiskFreeBytes lets main watch
// the disk while the log is open, to refuse writes before it is full.

// openSlackBytes is the room Open needs beyond the size of the WAL files
// it replays: the new manifest, options file and WAL, with a margin.
const openSlackBytes = 8 << 20

// DiskFreeBytes returns the bytes free for unprivileged writes on the
// disk that holds the log.
func (l *Log) DiskFreeBytes() (uint64, error) { return diskFreeBytes(l.fs, l.dir) }

// checkRoom returns an error when the disk under dir has less free space
// than opening the log there needs. When the free space cannot be known
// (an in-memory filesystem), it says nothing.
func checkRoom(fs vfs.FS, dir string) error {
	free, err := diskFreeBytes(fs, dir)
	if err != nil {
		return nil
	}
	var logBytes uint64
	names, _ := fs.List(dir) // no directory yet: a new log, nothing to replay
	for _, name := range names {
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		if info, err := fs.Stat(fs.PathJoin(dir, name)); err == nil {
			logBytes += uint64(info.Size())
		}
	}
	if need := logBytes + openSlackBytes; free < need {
		return fmt.Errorf("wal: not enough free disk space to open the log in %s: %s free, %s needed "+
			"(the %s of WAL files it replays and writes out again as tables, plus %s); free some space and start again",
			dir, mib(free), mib(need), mib(logBytes), mib(openSlackBytes))
	}
	return nil
}

// diskFreeBytes asks the filesystem about dir or, when dir does not exist
// yet (a first start), about its nearest parent that does.
func diskFreeBytes(fs vfs.FS, dir string) (uint64, error) {
	for p := dir; ; p = fs.PathDir(p) {
		u, err := fs.GetDiskUsage(p)
		if err == nil {
			return u.AvailBytes, nil
		}
		if !errors.Is(err, os.ErrNotExist) || fs.PathDir(p) == p {
			return 0, fmt.Errorf("wal: cannot tell the free disk space of %s: %w", dir, err)
		}
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
