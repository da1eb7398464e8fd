package wal

import (
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestFailedSyncIsReturned injects an error into the sync of the WAL file.
// Append commits with ApplyNoSyncWait, so the failed sync comes back from
// the wait function (Batch.SyncWait) as an error that wraps the injected
// one; it is never reported as success. Pebble may instead treat the fault
// as fatal and call Logger.Fatalf; OnFatal then ends the goroutine. Either is
// fail-stop, a nil error is the bug. The entry that was acknowledged before
// the fault survives power loss.
func TestFailedSyncIsReturned(t *testing.T) {
	var failing atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		isSync := op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
		if failing.Load() && isSync && strings.HasSuffix(op.Path, ".log") {
			return errorfs.ErrInjected
		}
		return nil
	})
	mem := vfs.NewCrashableMem()
	fatal := make(chan string, 2)
	l, err := Open("db", Options{FS: errorfs.Wrap(mem, inj), Logger: quiet,
		OnFatal: func(msg string) { fatal <- msg; runtime.Goexit() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := appendSync(l, 0, 1, [][]byte{[]byte("before")}); err != nil {
		t.Fatalf("Append before the fault: %v", err)
	}
	failing.Store(true)
	returned := make(chan error, 1)
	go func() { returned <- appendSync(l, 0, 2, [][]byte{[]byte("during")}) }()
	select {
	case msg := <-fatal:
		if !strings.Contains(msg, errorfs.ErrInjected.Error()) {
			t.Fatalf("OnFatal got %q, want the injected error", msg)
		}
	case err := <-returned:
		if err == nil {
			t.Fatal("Append returned nil although its sync failed")
		}
		if !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("Append error %v does not wrap the injected error", err)
		}
	}
	// The entry that was acknowledged survives power loss; the one whose
	// sync failed was never acknowledged, so either outcome is fine for it.
	l2, err := Open("db", Options{FS: mem.CrashClone(vfs.CrashCloneCfg{}), Logger: quiet})
	if err != nil {
		t.Fatalf("reopen after the fault: %v", err)
	}
	defer l2.Close()
	if got := replayAll(t, l2, 0, 0); len(got) == 0 || got[0] != "1:before" {
		t.Fatalf("after the fault the log holds %v, want 1:before first", got)
	}
}
