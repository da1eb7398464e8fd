package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi"
)

// TestBackupUnderLoadThenRestore: buyers purchase from several goroutines
// while `onsale backup -url` copies the running server. Every purchase
// acknowledged before the backup started is in the copy; every order in
// the copy is the source's order as it was; `onsale verify` passes on the
// copy and fails on a copy with a flipped byte; onsale started on the copy
// serves that state. Offline, `onsale backup` on a running server's
// directory says to use -url, and works once the server is stopped.
func TestBackupUnderLoadThenRestore(t *testing.T) {
	dir := t.TempDir()
	base, _, stop := startRun(t, "-data", dir, "-shards", "2", "-user-rate", "0")
	sec := readSecrets(t, dir)
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	sales := []string{"s1", "s2", "s3"}
	for _, s := range sales {
		if st, m := c.do("PUT", "/v1/admin/sales/"+s, admin, demoSale(100000)); st != 201 {
			t.Fatalf("put sale: %d %v", st, m)
		}
	}

	const workers, perWorker = 4, 150
	var backupStarted atomic.Bool
	var ackedBefore sync.Map // order id → true: answered 201 before the backup started
	var acked atomic.Int64
	enough := make(chan struct{})
	var enoughOnce sync.Once
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				select {
				case <-done:
					return
				default:
				}
				user := fmt.Sprintf("u%d-%d", w, i)
				tok, _ := httpapi.MintUserToken([]byte(sec.UserSecret), user, time.Now(), time.Hour)
				sale := sales[(w+i)%len(sales)]
				st, raw, err := c.try("POST", "/v1/sales/"+sale+"/purchase",
					map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": user}, `{"tier":"floor","quantity":1}`)
				before := !backupStarted.Load()
				if err != nil || st != 201 {
					t.Errorf("purchase: %d %s %v", st, raw, err)
					return
				}
				if before {
					ackedBefore.Store(orderID(t, raw), true)
				}
				if acked.Add(1) == 40 {
					enoughOnce.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(time.Minute):
		t.Fatal("fewer than 40 purchases in a minute")
	}
	dest := filepath.Join(t.TempDir(), "backups", "onsale-1")
	backupStarted.Store(true)
	var out bytes.Buffer
	stdout = &out
	err := run(context.Background(), []string{"backup", "-data", dir, "-url", base, "-to", dest}, &out, nil)
	stdout = os.Stdout
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "backup written to "+dest) {
		t.Errorf("backup output: %s", out.String())
	}
	if t.Failed() {
		t.FailNow()
	}

	// Offline backup of a running server's directory: refused, pointing at -url.
	err = run(context.Background(), []string{"backup", "-data", dir, "-to", filepath.Join(t.TempDir(), "x")}, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "-url") {
		t.Errorf("offline backup of a running server: %v", err)
	}

	// The source's orders, as they are now (pending orders do not change).
	source := map[string]map[string]any{}
	for _, s := range sales {
		for _, o := range listOrders(t, c, admin, s) {
			source[o["order_id"].(string)] = o
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	stdout = &out
	err = run(context.Background(), []string{"verify", "-data", dest}, &out, nil)
	stdout = os.Stdout
	if err != nil || !strings.Contains(out.String(), "is sound") {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	if fi, err := os.Stat(filepath.Join(dest, "secrets.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.json in the copy: %v %v", fi, err)
	}

	// A flipped byte in the copy's log: verify exits non-zero.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.CopyFS(bad, os.DirFS(dest)); err != nil {
		t.Fatal(err)
	}
	flipInBiggest(t, filepath.Join(bad, "wal"))
	stdout = &out
	err = run(context.Background(), []string{"verify", "-data", bad}, &out, nil)
	stdout = os.Stdout
	if err == nil {
		t.Errorf("verify of a copy with a flipped byte passed:\n%s", out.String())
	}
	t.Logf("verify of the copy with a flipped byte: %v", err)

	// Restore: start on the copy.
	base, _, _ = startRun(t, "-data", dest, "-shards", "2")
	c.base = base
	copied := map[string]map[string]any{}
	for _, s := range sales {
		for _, o := range listOrders(t, c, admin, s) {
			copied[o["order_id"].(string)] = o
		}
	}
	n := 0
	ackedBefore.Range(func(id, _ any) bool {
		n++
		if copied[id.(string)] == nil {
			t.Errorf("order %s, acknowledged before the backup started, is not in the copy", id)
		}
		return true
	})
	for id, o := range copied {
		if !reflect.DeepEqual(o, source[id]) {
			t.Errorf("order %s in the copy %v, in the source %v", id, o, source[id])
		}
	}
	t.Logf("%d purchases acknowledged before the backup, %d orders in the copy, %d in the source", n, len(copied), len(source))
	if n == 0 || len(copied) < n || len(copied) > len(source) {
		t.Errorf("%d acknowledged before, %d in the copy, %d in the source", n, len(copied), len(source))
	}
}

// TestBackupOffline: a stopped server's directory is backed up without a
// server, and the copy verifies.
func TestBackupOffline(t *testing.T) {
	dir := t.TempDir()
	base, _, stop := startRun(t, "-data", dir, "-shards", "2")
	sec := readSecrets(t, dir)
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	if st, m := c.do("PUT", "/v1/admin/sales/s1", map[string]string{"Authorization": "Bearer " + sec.AdminToken}, demoSale(10)); st != 201 {
		t.Fatalf("put sale: %d %v", st, m)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "b")
	var out bytes.Buffer
	stdout = &out
	defer func() { stdout = os.Stdout }()
	if err := run(context.Background(), []string{"backup", "-data", dir, "-to", dest}, &out, nil); err != nil {
		t.Fatalf("backup: %v", err)
	}
	if err := run(context.Background(), []string{"backup", "-data", dir, "-to", dest}, &out, nil); err == nil {
		t.Errorf("a second backup to the same directory passed")
	}
	if err := run(context.Background(), []string{"verify", "-data", dest}, &out, nil); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !strings.Contains(out.String(), "1 sales, 0 orders") {
		t.Errorf("verify output: %s", out.String())
	}
}

func orderID(t *testing.T, raw []byte) string {
	t.Helper()
	i := bytes.Index(raw, []byte(`"order_id":"`))
	if i < 0 {
		t.Fatalf("no order_id in %s", raw)
	}
	rest := raw[i+len(`"order_id":"`):]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

// listOrders reads every order of a sale, page by page.
func listOrders(t *testing.T, c *client, admin map[string]string, sale string) []map[string]any {
	t.Helper()
	var all []map[string]any
	cursor := ""
	for range 1000 {
		st, m := c.do("GET", "/v1/admin/sales/"+sale+"/orders?limit=100&cursor="+url.QueryEscape(cursor), admin, "")
		if st != 200 {
			t.Fatalf("list orders: %d %v", st, m)
		}
		for _, o := range m["orders"].([]any) {
			all = append(all, o.(map[string]any))
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatal("more than 1000 pages")
	return nil
}

// flipInBiggest flips one byte in the middle of the largest table or WAL
// file of a log directory.
func flipInBiggest(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var biggest string
	var size int64
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); ext != ".sst" && ext != ".log" {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			biggest, size = filepath.Join(dir, e.Name()), fi.Size()
		}
	}
	if biggest == "" {
		t.Fatal("no table or WAL file in " + dir)
	}
	raw, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x10
	os.Chmod(biggest, 0o600)
	if err := os.WriteFile(biggest, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
