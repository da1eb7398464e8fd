package wal

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestOpenRefusesWithoutRoom: Open needs the size of the WAL files it
// replays plus openSlackBytes free, and says so in one error; with that
// room it opens, and DiskFreeBytes reports what the filesystem says.
func TestOpenRefusesWithoutRoom(t *testing.T) {
	mem := vfs.NewMem()
	setFree := func(free uint64) {
		mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: free, TotalBytes: 1 << 40, UsedBytes: 1<<40 - free})
	}
	setFree(openSlackBytes - 1)
	_, err := Open("db", Options{FS: mem, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "not enough free disk space to open the log in db: 8.0 MiB free, 8.0 MiB needed") {
		t.Fatalf("Open with 1 byte too few free: %v", err)
	}
	if names, _ := mem.List("db"); len(names) != 0 {
		t.Fatalf("the refused Open wrote %v", names)
	}

	setFree(1 << 30)
	l := openMem(t, mem)
	entry := bytes.Repeat([]byte{7}, 1<<20)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := appendSync(l, 0, seq, [][]byte{entry}); err != nil {
			t.Fatal(err)
		}
	}
	if free, err := l.DiskFreeBytes(); err != nil || free != 1<<30 {
		t.Fatalf("DiskFreeBytes = %d, %v", free, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	setFree(openSlackBytes + 3<<20) // less than the WAL files (3 MiB and headers) + slack
	_, err = Open("db", Options{FS: mem, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "(the 3.0 MiB of WAL files it replays") {
		t.Fatalf("Open beside 3 MiB of WAL: %v", err)
	}
	setFree(openSlackBytes + 4<<20)
	l = openMem(t, mem)
	defer l.Close()
	if got := replayAll(t, l, 0, 0); len(got) != 3 {
		t.Fatalf("replayed %d entries, want 3", len(got))
	}
}
