package reliability

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// TestQueueKillRestoresPlaces: buyers join a shuffle_at_open sale before
// and after its draw while the server is killed with SIGKILL; after the
// restart every acknowledged join has its place and join id exactly, and
// the published draw is the same.
func TestQueueKillRestoresPlaces(t *testing.T) {
	d := &driver{cfg: Config{Bin: testBinary(t), DataDir: t.TempDir(), Workers: 1, Shards: 2}, l: newLedger()}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { d.srv.kill() }()
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	call := func(method, path, token, body string) (int, map[string]any, []byte, error) {
		req, _ := http.NewRequest(method, "http://"+d.srv.addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := hc.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return res.StatusCode, m, raw, err
	}
	tokens := map[string]string{}
	for i := range 400 {
		u := fmt.Sprint("u", i)
		tok, err := api.MintUserToken([]byte(userSecret), u, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		tokens[u] = tok
	}
	opens := time.Now().UTC().Truncate(time.Second).Add(3 * time.Second)
	sale := fmt.Sprintf(`{"name":"Queued","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":2,
		"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":50}],
		"queue":{"mode":"shuffle_at_open","admit_rate":5,"admission_ttl_seconds":60}}`,
		opens.Format(time.RFC3339), opens.Add(time.Hour).Format(time.RFC3339))
	if st, _, raw, err := call("PUT", "/v1/admin/sales/q", adminToken, sale); err != nil || st != 201 {
		t.Fatalf("put sale: %d %s %v", st, raw, err)
	}
	var mu sync.Mutex
	acked := map[string]string{} // user -> join id
	join := func(users []string) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(users); i += 8 {
					st, m, _, err := call("POST", "/v1/sales/q/queue", tokens[users[i]], "")
					if err == nil && (st == 200 || st == 201) {
						mu.Lock()
						acked[users[i]] = m["join_id"].(string)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}
	users := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprint("u", i))
		}
		return out
	}
	join(users(0, 200))
	var draw []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		st, m, raw, err := call("GET", "/v1/sales/q/queue/draw", "", "")
		if err == nil && st == 200 && m["drawn"] == true {
			draw = raw
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no draw 30 s after the opening: %d %s %v", st, raw, err)
		}
		time.Sleep(20 * time.Millisecond) // the shard's tick draws; nothing to observe sooner
	}
	// Late joiners race the kill.
	done := make(chan struct{})
	go func() { join(users(200, 400)); close(done) }()
	time.Sleep(30 * time.Millisecond)
	if err := d.srv.kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	mu.Lock()
	before := map[string]string{}
	for u, id := range acked {
		before[u] = id
	}
	mu.Unlock()
	places := map[string]float64{}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	late := 0
	for u, id := range before {
		st, m, raw, err := call("GET", "/v1/sales/q/queue/me", tokens[u], "")
		if err != nil || st != 200 || m["join_id"] != id {
			t.Fatalf("%s after the kill: %d %s %v, want join id %s", u, st, raw, err, id)
		}
		places[u] = m["place"].(float64)
		var n int
		fmt.Sscanf(u, "u%d", &n)
		if n >= 200 {
			late++
		}
	}
	_, _, again, err := call("GET", "/v1/sales/q/queue/draw", "", "")
	if err != nil || string(again) != string(draw) {
		t.Fatalf("the draw changed across the kill")
	}
	// Places are unique and the early joiners hold the first 200.
	seen := map[float64]string{}
	for u, p := range places {
		if o, dup := seen[p]; dup {
			t.Fatalf("%s and %s both at place %v", u, o, p)
		}
		seen[p] = u
	}
	t.Logf("%d joins acknowledged (%d before the draw), %d after it before the kill, all restored", len(before), 200, late)
	if len(before) < 200 {
		t.Fatalf("only %d joins acknowledged", len(before))
	}
}
