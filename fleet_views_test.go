package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/fleet"
	"github.com/onsale/onsale/httpapi/notify"
	"github.com/onsale/onsale/wal/jetstream/jstest"
)

// fleetBinary builds onsale once for the fleet tests of this file.
var fleetBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "onsale-fleet-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "onsale")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// smallFleet runs a JetStream server and one onsale process per prefer
// entry, over two partitions with a short lease; extra flags go to every
// node. It waits for the first two to be ready.
type smallFleet struct {
	t     *testing.T
	js    *jstest.Cluster
	bin   string
	nodes []*fleetNodeProc
	extra []string
}

func startSmallFleet(t *testing.T, prefer []int, extra ...string) *smallFleet {
	t.Helper()
	bin, err := fleetBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := &smallFleet{t: t, js: jstest.Start(t, 3, false), bin: bin, extra: extra}
	dir := t.TempDir()
	secrets := fmt.Sprintf(`{"admin_token":%q,"user_secret":"fleet-user-secret","payment_secret":"fleet-pay","door_token":"fleet-door","data_key":"fleet-data-key-0123456789abcdef0123456789abcdef"}`, fleetTestAdmin)
	for i, p := range prefer {
		n := &fleetNodeProc{addr: freeAddr(t), dir: filepath.Join(dir, fmt.Sprintf("node%d", i)), prefer: p}
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.dir, "secrets.json"), []byte(secrets), 0o600); err != nil {
			t.Fatal(err)
		}
		f.nodes = append(f.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range f.nodes {
			if n.cmd != nil {
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
	})
	for i, n := range f.nodes {
		f.start(n)
		if i < 2 {
			waitReady(t, n.addr, 30*time.Second)
		}
	}
	return f
}

func (f *smallFleet) start(n *fleetNodeProc) {
	args := append([]string{"-addr", n.addr, "-data", n.dir, "-nats", f.js.URL(), "-nats-replicas", "1",
		"-fleet-partitions", "2", "-fleet-partition", fmt.Sprint(n.prefer), "-fleet-lease", "2s", "-shards", "2",
		"-user-rate", "0", "-min-free-disk", "0", "-log-level", "info"}, f.extra...)
	n.cmd = exec.Command(f.bin, args...)
	n.cmd.Stderr = &prefixWriter{prefix: fmt.Sprintf("node%d: ", n.prefer)}
	if err := n.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	n.exited = make(chan struct{})
	cmd, exited := n.cmd, n.exited
	go func() { cmd.Wait(); close(exited) }()
}

// salesInBoth returns n sale ids of partition 0 and n of partition 1 (of 2).
func salesInBoth(prefix string, n int) (p0, p1 []string) {
	for i := 0; len(p0) < n || len(p1) < n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		if fleet.PartitionOf([]byte(id), 2) == 0 {
			if len(p0) < n {
				p0 = append(p0, id)
			}
		} else if len(p1) < n {
			p1 = append(p1, id)
		}
	}
	return p0, p1
}

// callRetry is call, sent again (the same Idempotency-Key) while the
// answer is 503 or none: a loaded machine may answer a purchase late.
func callRetry(c *http.Client, method, url, token, idemKey, body string) (int, []byte) {
	for range 20 {
		status, raw := call(c, method, url, token, idemKey, body)
		if status != 0 && status != 503 {
			return status, raw
		}
		time.Sleep(100 * time.Millisecond)
	}
	return call(c, method, url, token, idemKey, body)
}

// purchased reads a purchase's status: a purchase sent again with its key
// (callRetry) is answered 200 with the order the first one made.
func purchased(status int) int {
	if status == 200 {
		return 201
	}
	return status
}

func mustJSON(t *testing.T, status, want int, raw []byte, what string, v any) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: %d %s", what, status, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %v: %s", what, err, raw)
		}
	}
}

// TestFleetSpanningRoutes: two nodes, each the owner of one of two
// partitions, sales in both. Every route that spans sales sees both
// partitions from either node: sales:load splits its sales, the catalogue
// pages through all of them in order with the fleet's cursor, the admin
// lists, me/orders, refunds and the audit log list both; a payment
// notification and a check-in by code reach the owner of the sale they
// name.
func TestFleetSpanningRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream server")
	}
	f := startSmallFleet(t, []int{0, 1})
	a, b := f.nodes[0].addr, f.nodes[1].addr
	client := &http.Client{Timeout: 10 * time.Second}
	p0, p1 := salesInBoth("view", 3)
	ids := append(append([]string(nil), p0...), p1...)

	// sales:load through node a: the sales of partition 1 go to b.
	now := time.Now().UTC()
	var items []string
	for i, id := range ids {
		items = append(items, fmt.Sprintf(`{"id":%q,"name":"View %d","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,`+
			`"per_user_limit":10,"event":"Tour","city":"Lyon","starts_at":%q,"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":100}]}`,
			id, i, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339),
			now.Add(time.Duration(24*(len(ids)-i))*time.Hour).Format(time.RFC3339)))
	}
	status, raw := call(client, "POST", "http://"+a+"/v1/admin/sales:load", fleetTestAdmin, "", `{"sales":[`+strings.Join(items, ",")+`]}`)
	var loaded struct{ Sales []struct{ ID string } }
	mustJSON(t, status, 200, raw, "sales:load", &loaded)
	if len(loaded.Sales) != len(ids) {
		t.Fatalf("sales:load answered %d sales, want %d: %s", len(loaded.Sales), len(ids), raw)
	}
	for _, id := range ids { // each is where it belongs: its partition's owner serves it
		if status, raw := call(client, "GET", "http://"+b+"/v1/sales/"+id, "", "", ""); status != 200 {
			t.Fatalf("GET sale %s after sales:load: %d %s", id, status, raw)
		}
	}

	// The admin list, from either node.
	for _, addr := range []string{a, b} {
		status, raw := call(client, "GET", "http://"+addr+"/v1/admin/sales", fleetTestAdmin, "", "")
		var l struct{ Sales []struct{ ID string } }
		mustJSON(t, status, 200, raw, "admin sales", &l)
		var got []string
		for _, s := range l.Sales {
			got = append(got, s.ID)
		}
		want := slices.Sorted(slices.Values(ids))
		if !slices.Equal(got, want) {
			t.Errorf("GET /v1/admin/sales from %s: %v, want %v", addr, got, want)
		}
	}

	// The catalogue, two at a time: every sale once, by start (the last
	// loaded starts first).
	var pages []string
	cursor := ""
	for range 10 {
		url := "http://" + b + "/v1/sales?limit=2"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		status, raw := call(client, "GET", url, "", "", "")
		var pg struct {
			Sales      []struct{ ID string }
			NextCursor string `json:"next_cursor"`
		}
		mustJSON(t, status, 200, raw, "catalogue", &pg)
		if len(pg.Sales) > 2 {
			t.Fatalf("catalogue page of %d with limit 2", len(pg.Sales))
		}
		for _, s := range pg.Sales {
			pages = append(pages, s.ID)
		}
		if cursor = pg.NextCursor; cursor == "" {
			break
		}
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(pages, want) {
		t.Errorf("catalogue pages: %v, want %v", pages, want)
	}
	if status, raw := call(client, "GET", "http://"+a+"/v1/sales?cursor=bm90LW91cnM", "", "", ""); status != 400 {
		t.Errorf("catalogue with a foreign cursor: %d %s", status, raw)
	}

	// A buyer's orders in both partitions, through either node; paid by
	// onsale's own payment notification sent to the node that does not
	// own the sale.
	token := buyerToken(t, client, a)
	var orders []string
	for i, sale := range []string{p0[0], p1[0]} {
		status, raw := callRetry(client, "POST", "http://"+[]string{b, a}[i]+"/v1/sales/"+sale+"/purchase", token, fmt.Sprintf("buy%d", i), `{"tier":"ga","quantity":1}`)
		var o struct {
			OrderID string `json:"order_id"`
		}
		mustJSON(t, purchased(status), 201, raw, "purchase", &o)
		orders = append(orders, o.OrderID)
		body := fmt.Sprintf(`{"id":"evt-%d","type":"payment.succeeded","order_id":%q,"amount_cents":1000,"currency":"EUR"}`, i, o.OrderID)
		req, _ := http.NewRequest("POST", "http://"+[]string{b, a}[i]+"/v1/payments/webhook", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Onsale-Signature", notify.Sign([]byte("fleet-pay"), []byte(body), time.Now()))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("payment notification for %s through the other node: %d", o.OrderID, res.StatusCode)
		}
	}
	for _, addr := range []string{a, b} {
		status, raw := call(client, "GET", "http://"+addr+"/v1/me/orders", token, "", "")
		var l struct {
			Orders []struct {
				OrderID string `json:"order_id"`
				Status  string
			}
		}
		mustJSON(t, status, 200, raw, "me/orders", &l)
		var got []string
		for _, o := range l.Orders {
			got = append(got, o.OrderID)
			if o.Status != "paid" {
				t.Errorf("order %s is %s after its payment notification", o.OrderID, o.Status)
			}
		}
		if len(got) != 2 || got[0] != orders[1] || got[1] != orders[0] {
			t.Errorf("GET /v1/me/orders from %s: %v, want newest first %v", addr, got, []string{orders[1], orders[0]})
		}
	}

	// Check in by code, each through the node that does not own the sale.
	for i, id := range orders {
		status, raw := call(client, "GET", "http://"+a+"/v1/orders/"+id+"/tickets", token, "", "")
		var tk struct{ Tickets []struct{ Code string } }
		mustJSON(t, status, 200, raw, "tickets", &tk)
		if len(tk.Tickets) != 1 || tk.Tickets[0].Code == "" {
			t.Fatalf("tickets of %s: %s", id, raw)
		}
		status, raw = call(client, "POST", "http://"+[]string{b, a}[i]+"/v1/checkin", "fleet-door", "",
			fmt.Sprintf(`{"code":%q,"gate":"A"}`, tk.Tickets[0].Code))
		mustJSON(t, status, 200, raw, "check-in by code", nil)
	}

	// Refunds of both, listed from either node.
	for _, id := range orders {
		status, raw := call(client, "POST", "http://"+a+"/v1/admin/orders/"+id+"/refund", fleetTestAdmin, "", `{"force":true}`)
		mustJSON(t, status, 200, raw, "refund", nil)
	}
	for _, addr := range []string{a, b} {
		status, raw := call(client, "GET", "http://"+addr+"/v1/admin/refunds", fleetTestAdmin, "", "")
		var l struct {
			Refunds []struct {
				OrderID string `json:"order_id"`
			}
		}
		mustJSON(t, status, 200, raw, "refunds", &l)
		if len(l.Refunds) != 2 {
			t.Errorf("GET /v1/admin/refunds from %s: %s, want both orders' refunds", addr, raw)
		}
		status, raw = call(client, "GET", "http://"+addr+"/v1/admin/refund-queue", fleetTestAdmin, "", "")
		mustJSON(t, status, 200, raw, "refund-queue", nil)
	}

	// The audit log: one page and page by page agree, and name sales of
	// both partitions.
	status, raw = call(client, "GET", "http://"+b+"/v1/admin/audit?limit=200", fleetTestAdmin, "", "")
	type entry struct{ At, Action, Target, RequestID string }
	var whole struct{ Entries []entry }
	mustJSON(t, status, 200, raw, "audit", &whole)
	var paged []entry
	cursor = ""
	for range 200 {
		url := "http://" + a + "/v1/admin/audit?limit=3"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		status, raw := call(client, "GET", url, fleetTestAdmin, "", "")
		var pg struct {
			Entries    []entry
			NextCursor string `json:"next_cursor"`
		}
		mustJSON(t, status, 200, raw, "audit page", &pg)
		paged = append(paged, pg.Entries...)
		if cursor = pg.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, whole.Entries) {
		t.Errorf("audit page by page (%d entries) differs from one page (%d)", len(paged), len(whole.Entries))
	}
	seen := map[int]bool{}
	for _, e := range whole.Entries {
		for _, id := range orders {
			if strings.Contains(e.Target, id) {
				seen[fleet.PartitionOf([]byte(strings.Split(id, ".")[0]), 2)] = true
			}
		}
	}
	if !seen[0] || !seen[1] {
		t.Errorf("the audit log names refunds of partitions %v, want both: %+v", seen, whole.Entries)
	}

	// A backup names the streams that hold the fleet's data.
	status, raw = call(client, "POST", "http://"+b+"/v1/admin/backup", fleetTestAdmin, "", `{"to":"/tmp/onsale-fleet-backup"}`)
	var problem struct{ Code, Detail string }
	mustJSON(t, status, 409, raw, "backup", &problem)
	for _, s := range []string{"nats stream backup", "onsale_p0_0", "onsale_p1_1", "OBJ_onsale_p1_snap", "KV_onsale_users", "KV_onsale_fleet"} {
		if problem.Code != "backup_in_jetstream" || !strings.Contains(problem.Detail, s) {
			t.Errorf("backup on a fleet node: %s, want backup_in_jetstream naming %s", raw, s)
		}
	}
}

// TestFleetNotificationsFailover: a webhook endpoint registered on the
// home node receives the order.created notifications of both partitions;
// the owner of partition 0 is killed (kill -9) while its notifications
// are being delivered, the standby takes the partition over and resumes
// from the cursor in JetStream: every order's notification arrives at
// least once, a repeated one with the same id, and ids of the two
// partitions never meet.
func TestFleetNotificationsFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream cluster")
	}
	var (
		mu       sync.Mutex
		byEvent  = map[string]string{} // event id -> order id
		byOrder  = map[string]int{}    // order id -> deliveries
		received int
		gate     = make(chan struct{}) // closed once every order is bought
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			ID   string
			Type string
			Data struct {
				OrderID string `json:"order_id"`
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil || p.Data.OrderID == "" {
			t.Errorf("webhook body: %v %+v", err, p)
		}
		// Nothing is taken before every order is bought, then slowly: the
		// kill comes while partition 0's deliveries are under way.
		select {
		case <-gate:
		case <-time.After(30 * time.Second):
		}
		time.Sleep(40 * time.Millisecond)
		mu.Lock()
		if prev, ok := byEvent[p.ID]; ok && prev != p.Data.OrderID {
			t.Errorf("event %s named order %s, then %s", p.ID, prev, p.Data.OrderID)
		}
		byEvent[p.ID] = p.Data.OrderID
		byOrder[p.Data.OrderID]++
		received++
		mu.Unlock()
	}))
	defer receiver.Close()

	f := startSmallFleet(t, []int{0, 1, 0}, "-fleet-notify")
	a, b := f.nodes[0].addr, f.nodes[1].addr
	client := &http.Client{Timeout: 10 * time.Second}
	status, raw := call(client, "POST", "http://"+b+"/v1/admin/webhooks", fleetTestAdmin, "",
		fmt.Sprintf(`{"url":%q,"events":["order.created"],"secret":"fleet-webhook-secret-0123456789"}`, receiver.URL))
	var hook struct{ ID string }
	mustJSON(t, status, 201, raw, "register a webhook", &hook)
	// Partition 1's owner learns of the endpoint through JetStream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := client.Get("http://" + b + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(body), `onsale_webhook_endpoint_backlog{endpoint="`+hook.ID+`"}`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the owner of partition 1 did not start delivering to the endpoint within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	p0, p1 := salesInBoth("note", 1)
	now := time.Now().UTC()
	for _, id := range []string{p0[0], p1[0]} {
		body := fmt.Sprintf(`{"name":"Note","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":1000,`+
			`"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":1000}]}`,
			now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
		status, raw := call(client, "PUT", "http://"+a+"/v1/admin/sales/"+id, fleetTestAdmin, "", body)
		mustJSON(t, status, 201, raw, "PUT sale", nil)
	}
	token := buyerToken(t, client, a)
	const perSale = 40
	var orders []string
	partition := map[string]int{}
	for i := range perSale {
		for p, sale := range []string{p0[0], p1[0]} {
			status, raw := callRetry(client, "POST", "http://"+b+"/v1/sales/"+sale+"/purchase", token, fmt.Sprintf("n%d-%d", p, i), `{"tier":"ga","quantity":1}`)
			var o struct {
				OrderID string `json:"order_id"`
			}
			mustJSON(t, purchased(status), 201, raw, "purchase", &o)
			orders = append(orders, o.OrderID)
			partition[o.OrderID] = p
		}
	}
	close(gate)
	delivered := func(p int) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for o := range byOrder {
			if partition[o] == p {
				n++
			}
		}
		return n
	}
	deadline = time.Now().Add(30 * time.Second)
	for delivered(0) < 3 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	f.nodes[0].cmd.Process.Kill()
	<-f.nodes[0].exited
	atKill := delivered(0)
	t.Logf("partition 0's owner killed after %d of its %d orders were notified", atKill, perSale)
	if atKill == 0 || atKill == perSale {
		t.Errorf("the kill came with %d of %d notified: not in the middle of the deliveries", atKill, perSale)
	}
	deadline = time.Now().Add(60 * time.Second)
	for (delivered(0) < perSale || delivered(1) < perSale) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range orders {
		if byOrder[o] == 0 {
			t.Errorf("order %s (partition %d): no order.created delivered", o, partition[o])
		}
	}
	for id, o := range byEvent {
		if want := fmt.Sprintf("evt_p%d_", partition[o]); !strings.HasPrefix(id, want) {
			t.Errorf("event %s of partition %d: want the prefix %s", id, partition[o], want)
		}
	}
	t.Logf("%d deliveries of %d events for %d orders (%d repeated around the takeover)", received, len(byEvent), len(orders), received-len(byEvent))
}
