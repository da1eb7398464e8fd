package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestBackupUnderAppends: shards append from their own goroutines while a
// backup is taken. Every append acknowledged (synced) before the backup
// started is in the copy, each shard's log in the copy is a gapless prefix
// of the live one, the files beside the log come along with their modes,
// and Positions names each shard's last entry in the copy.
func TestBackupUnderAppends(t *testing.T) {
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "secrets.json"), []byte(`{"data_key":"k"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(data, "keys"), 0o700)
	if err := os.WriteFile(filepath.Join(data, "keys", "alipay.pem"), []byte("pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(filepath.Join(data, "wal"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const shards = 3
	if err := l.Reset(make([][][]byte, shards)); err != nil {
		t.Fatal(err)
	}
	var acked [shards]uint64 // per shard: last seq synced before the backup started
	var mu sync.Mutex
	started := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for shard := range shards {
		wg.Go(func() {
			for seq := uint64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := appendSync(l, shard, seq, [][]byte{fmt.Appendf(nil, "%d-%d", shard, seq)}); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-started:
				default:
					mu.Lock()
					acked[shard] = seq
					mu.Unlock()
				}
				if seq == 200 {
					<-stop // bounded: the backup below is taken long before
					return
				}
			}
		})
	}
	// Let every shard get some way first: observed, not slept for.
	for {
		mu.Lock()
		ok := acked[0] > 10 && acked[1] > 10 && acked[2] > 10
		mu.Unlock()
		if ok {
			break
		}
	}
	mu.Lock()
	close(started)
	before := acked
	mu.Unlock()
	dest := filepath.Join(t.TempDir(), "backups", "b1")
	info, err := l.Backup(data, dest)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != dest || info.SizeBytes <= 0 || len(info.Positions) != shards {
		t.Fatalf("info = %+v", info)
	}
	fi, err := os.Stat(filepath.Join(dest, "secrets.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.json in the copy: %v, %v", fi, err)
	}
	if raw, err := os.ReadFile(filepath.Join(dest, "keys", "alipay.pem")); err != nil || string(raw) != "pem" {
		t.Fatalf("key file in the copy: %q, %v", raw, err)
	}
	c, err := Open(filepath.Join(dest, "wal"), Options{ReadOnly: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for shard := range shards {
		got := replayAll(t, c, shard, 0)
		if uint64(len(got)) < before[shard] {
			t.Errorf("shard %d: the copy has %d entries, %d were acknowledged before the backup", shard, len(got), before[shard])
		}
		if uint64(len(got)) != info.Positions[shard] {
			t.Errorf("shard %d: the copy has %d entries, Positions says %d", shard, len(got), info.Positions[shard])
		}
		for i, e := range got {
			if want := fmt.Sprintf("%d:%d-%d", i+1, shard, i+1); e != want {
				t.Fatalf("shard %d entry %d = %q, want %q", shard, i, e, want)
			}
		}
	}
	if keys, err := c.Check(); err != nil || keys == 0 {
		t.Fatalf("Check = %d, %v", keys, err)
	}
}

func TestBackupRefusesBadDestinations(t *testing.T) {
	data := t.TempDir()
	l, err := Open(filepath.Join(data, "wal"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	exists := t.TempDir()
	for _, tc := range []struct {
		dest string
		want error
	}{
		{exists, ErrBackupExists},
		{data, ErrBackupInsideData},
		{filepath.Join(data, "backup"), ErrBackupInsideData},
		{filepath.Dir(data), ErrBackupInsideData}, // contains the data directory
	} {
		if _, err := l.Backup(data, tc.dest); !errors.Is(err, tc.want) {
			t.Errorf("Backup to %s: %v, want %v", tc.dest, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "backup")); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s: %v", filepath.Join(data, "backup"), err)
	}
}

// TestCheckFindsAFlippedByte: a byte flipped in the middle of any file of a
// copy's log (tables, WAL, manifest) makes opening it or Check fail; none
// passes silently with different data.
func TestCheckFindsAFlippedByte(t *testing.T) {
	data := t.TempDir()
	l, err := Open(filepath.Join(data, "wal"), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(make([][][]byte, 1)); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 50; seq++ {
		if err := appendSync(l, 0, seq, [][]byte{fmt.Appendf(nil, "entry-%d-%0100d", seq, seq)}); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "b")
	if _, err := l.Backup(data, dest); err != nil {
		t.Fatal(err)
	}
	l.Close()
	names, _ := os.ReadDir(filepath.Join(dest, "wal"))
	flipped := 0
	for _, n := range names {
		if filepath.Ext(n.Name()) != ".log" && filepath.Ext(n.Name()) != ".sst" {
			continue
		}
		copyDir := filepath.Join(t.TempDir(), "c")
		if err := os.CopyFS(copyDir, os.DirFS(filepath.Join(dest, "wal"))); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(copyDir, n.Name())
		raw, err := os.ReadFile(path)
		if err != nil || len(raw) < 100 {
			continue
		}
		os.Chmod(path, 0o600)
		raw[len(raw)/3] ^= 0x40
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		flipped++
		c, err := Open(copyDir, Options{ReadOnly: true, Logger: quiet})
		if err == nil {
			_, err = c.Check()
			c.Close()
		}
		if err == nil {
			t.Errorf("%s with a flipped byte at %d: opened and checked without error", n.Name(), len(raw)/3)
		}
	}
	if flipped == 0 {
		t.Fatal("no log file to flip a byte in")
	}
}
