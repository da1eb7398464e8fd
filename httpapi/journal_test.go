package httpapi

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/onsale/onsale/wal"
)

// newTestJournal opens a wal.Log on an in-memory filesystem: the engine's
// journal and the user store, as in production, without a disk.
func newTestJournal(t testing.TB) *wal.Log {
	t.Helper()
	l, err := wal.Open("wal", wal.Options{
		FS:      vfs.NewMem(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFatal: func(msg string) { panic("wal: " + msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
