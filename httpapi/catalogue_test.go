package httpapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// catalogueSaleJSON is saleJSON with catalogue members.
func (e *testEnv) catalogueSaleJSON(stock int, members string) string {
	s := e.saleJSON(stock, 4)
	return s[:len(s)-1] + "," + members + "}"
}

// TestCatalogueMembers: the catalogue members are written by PUT and
// sales:load, answered by every sale JSON, replaced by a PUT that leaves
// them out, and checked.
func TestCatalogueMembers(t *testing.T) {
	e := startEnv(t, envOptions{})
	members := `"event":"tour-27","venue":"Olympia","city":"Paris","starts_at":"2026-06-01T20:00:00Z",
		"category":"concert","image_url":"https://img.example/a.jpg","description":"Two hours.\nNo support act."`
	r := e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.catalogueSaleJSON(10, members)), 201, "")
	want := map[string]any{"event": "tour-27", "venue": "Olympia", "city": "Paris", "starts_at": "2026-06-01T20:00:00.000Z",
		"category": "concert", "image_url": "https://img.example/a.jpg", "description": "Two hours.\nNo support act."}
	for _, got := range []map[string]any{r.json(), e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()} {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
	}
	load := `{"sales":[` + strings.Replace(e.catalogueSaleJSON(5, `"city":"Lyon"`), "{", `{"id":"s2",`, 1) + `]}`
	if got := e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), load), 200, "").json()["sales"].([]any)[0].(map[string]any); got["city"] != "Lyon" {
		t.Errorf("sales:load: city %v", got["city"])
	}
	// A PUT without them removes them, and the JSON is as before catalogues.
	r = e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.saleJSON(10, 4)), 200, "")
	for k := range want {
		if _, ok := r.json()[k]; ok {
			t.Errorf("%s still present after a PUT without it", k)
		}
	}
	for _, bad := range []string{
		`"category":"opera"`, `"image_url":"http://img.example/a.jpg"`, `"image_url":"javascript:alert(1)"`,
		`"starts_at":"1970-01-01T00:00:00Z"`, `"starts_at":"tomorrow"`, `"event":"a b"`, `"city":"a\u0000b"`,
		fmt.Sprintf(`"description":%q`, strings.Repeat("d", 4001)), `"venue":1`,
	} {
		r := e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.catalogueSaleJSON(10, bad))
		if r.status != 422 || r.code() != "invalid_request" {
			t.Errorf("%s: got %d %s, want 422 invalid_request", bad, r.status, r.body)
		}
	}
}

// TestCatalogueListing: GET /v1/sales filters, sorts by starts_at then id
// (sales without one last), pages with its cursor, is cacheable, and
// refuses bad filters with 400 invalid_query.
func TestCatalogueListing(t *testing.T) {
	e := startEnv(t, envOptions{})
	at := func(h int) string { return e.clock.Now().Add(time.Duration(h) * time.Hour).UTC().Format(time.RFC3339) }
	for _, s := range []struct{ id, members string }{
		{"jazz-lyon", `"city":"Lyon","venue":"Halle","category":"concert","event":"jazz","starts_at":"` + at(48) + `"`},
		{"jazz-paris", `"city":"Paris","venue":"Olympia","category":"concert","event":"jazz","starts_at":"` + at(24) + `"`},
		{"match", `"city":"paris","venue":"Stade","category":"sport","starts_at":"` + at(72) + `"`},
		{"museum", `"city":"Paris","category":"exhibition"`},
		{"plain", ``},
	} {
		body := e.saleJSON(2, 4)
		if s.members != "" {
			body = e.catalogueSaleJSON(2, s.members)
		}
		e.want(e.do("PUT", "/v1/admin/sales/"+s.id, e.admin(), body), 201, "")
	}
	e.want(e.do("POST", "/v1/admin/sales/museum:close", e.admin(), ""), 200, "")
	list := func(query string) ([]string, string) {
		t.Helper()
		r := e.want(e.do("GET", "/v1/sales?"+query, nil, ""), 200, "")
		if cc := r.header.Get("Cache-Control"); cc != "public, max-age=1" {
			t.Errorf("Cache-Control %q", cc)
		}
		var ids []string
		for _, s := range r.json()["sales"].([]any) {
			ids = append(ids, s.(map[string]any)["id"].(string))
		}
		next, _ := r.json()["next_cursor"].(string)
		return ids, next
	}
	for query, want := range map[string]string{
		"":                                    "jazz-paris jazz-lyon match museum plain",
		"city=PARIS":                          "jazz-paris match museum",
		"category=concert&event=jazz":         "jazz-paris jazz-lyon",
		"venue=olympia":                       "jazz-paris",
		"q=" + url.QueryEscape("STADE paris"): "match",
		"from=" + url.QueryEscape(at(30)):     "jazz-lyon match",
		"to=" + url.QueryEscape(at(48)):       "jazz-paris",
		"available=true":                      "jazz-paris jazz-lyon match plain",
	} {
		if got, _ := list(query); strings.Join(got, " ") != want {
			t.Errorf("GET /v1/sales?%s: %v, want %s", query, got, want)
		}
	}
	var paged []string
	for cursor, pages := "", 0; ; pages++ {
		ids, next := list("limit=2&cursor=" + url.QueryEscape(cursor))
		paged = append(paged, ids...)
		if next == "" || pages > 5 {
			break
		}
		cursor = next
	}
	if strings.Join(paged, " ") != "jazz-paris jazz-lyon match museum plain" {
		t.Errorf("paged by 2: %v", paged)
	}
	for _, bad := range []string{"from=tomorrow", "to=2026-01-01", "limit=0", "limit=201", "limit=x", "available=maybe",
		"category=opera", "cursor=xyz", "ctiy=Paris", "city=a&city=b", "q=" + strings.Repeat("w+", 9),
		"from=" + url.QueryEscape(at(5)) + "&to=" + url.QueryEscape(at(1))} {
		r := e.want(e.do("GET", "/v1/sales?"+bad, nil, ""), 400, "invalid_query")
		if r.str("detail") == "" {
			t.Errorf("%s: no detail", bad)
		}
	}
	e.want(e.do("GET", "/v1/admin/sales", e.admin(), ""), 200, "")
}
