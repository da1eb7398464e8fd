package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi"
)

// TestVerifyDrawCommand: the draw a server published at a sale's opening
// is verified by "onsale verify-draw", which finds a buyer at the place
// the server gives them; a draw with two places swapped is refused.
func TestVerifyDrawCommand(t *testing.T) {
	dir := t.TempDir()
	base, _, _ := startRun(t, "-data", dir, "-shards", "2", "-tick", "20ms")
	sec := readSecrets(t, dir)
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	opens := time.Now().UTC().Truncate(time.Second).Add(2 * time.Second)
	sale := fmt.Sprintf(`{"name":"Queued","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":2,
		"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":50}],
		"queue":{"mode":"shuffle_at_open","admit_rate":5,"admission_ttl_seconds":60}}`,
		opens.Format(time.RFC3339), opens.Add(time.Hour).Format(time.RFC3339))
	if st, m := c.do("PUT", "/v1/admin/sales/q", admin, sale); st != 201 {
		t.Fatalf("put sale: %d %v", st, m)
	}
	buyer := func(u string) map[string]string {
		tok, _ := httpapi.MintUserToken([]byte(sec.UserSecret), u, time.Now(), time.Hour)
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	for i := range 30 {
		if st, m := c.do("POST", "/v1/sales/q/queue", buyer(fmt.Sprint("u", i)), ""); st != 201 || m["state"] != "registered" {
			t.Fatalf("join u%d: %d %v", i, st, m)
		}
	}
	var raw []byte
	eventually(t, "the draw at the opening", func() bool {
		st, b, err := c.try("GET", "/v1/sales/q/queue/draw", nil, "")
		raw = b
		return err == nil && st == 200 && bytes.Contains(b, []byte(`"drawn":true`))
	})
	file := filepath.Join(dir, "draw.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, me := c.do("GET", "/v1/sales/q/queue/me", buyer("u7"), "")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"verify-draw", "-join-id", me["join_id"].(string), file}, &out, nil); err != nil {
		t.Fatalf("verify-draw: %v\n%s", err, out.String())
	}
	if want := fmt.Sprintf("was drawn at place %v ", me["place"]); !strings.Contains(out.String(), "verified") || !strings.Contains(out.String(), want) {
		t.Fatalf("verify-draw said %q, want %q", out.String(), want)
	}
	var d map[string]any
	json.Unmarshal(raw, &d)
	order := d["order"].([]any)
	order[0], order[1] = order[1], order[0]
	tampered, _ := json.Marshal(d)
	os.WriteFile(file, tampered, 0o600)
	if err := run(context.Background(), []string{"verify-draw", file}, &out, nil); err == nil || !strings.Contains(err.Error(), "place 0") {
		t.Fatalf("a tampered draw: %v", err)
	}
}
