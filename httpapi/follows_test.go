package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

// TestFollowRoutes: follow, list and unfollow through the real server:
// who may, bad input, idempotence, the cap, and another buyer's follow.
func TestFollowRoutes(t *testing.T) {
	e := startEnv(t, envOptions{})
	const path = "/v1/me/follows"
	e.want(e.do("POST", path, nil, `{"kind":"venue","value":"Arena"}`), 401, codeUnauthorized)
	e.want(e.do("POST", path, e.admin(), `{"kind":"venue","value":"Arena"}`), 403, codeForbidden)
	for _, bad := range []string{
		`{"kind":"city","value":"Paris"}`,
		`{"kind":"venue","value":""}`,
		`{"kind":"venue","value":"   "}`,
		`{"kind":"category","value":"opera"}`,
		`{"kind":"event","value":"` + strings.Repeat("e", 65) + `"}`,
		`{"kind":"venue","value":"` + strings.Repeat("v", 201) + `"}`,
		`{"kind":"venue","value":"Arena","extra":1}`,
		`{"kind":"venue"}`,
	} {
		e.want(e.do("POST", path, e.buyer("ann"), bad), 422, codeInvalidRequest)
	}
	e.want(e.do("POST", path, e.buyer("ann"), `{"kind":`), 400, codeMalformedJSON)

	first := e.want(e.do("POST", path, e.buyer("ann"), `{"kind":"venue","value":" The Arena "}`), 201, "").json()
	if first["value"] != "the arena" || !strings.HasPrefix(first["id"].(string), "fol_") {
		t.Fatalf("follow %v", first)
	}
	again := e.want(e.do("POST", path, e.buyer("ann"), `{"kind":"venue","value":"THE ARENA"}`), 200, "").json()
	if again["id"] != first["id"] {
		t.Fatalf("following again gave %v, want %v", again, first)
	}
	for i := 1; i < 100; i++ {
		e.want(e.do("POST", path, e.buyer("ann"), fmt.Sprintf(`{"kind":"event","value":"e%d"}`, i)), 201, "")
	}
	e.want(e.do("POST", path, e.buyer("ann"), `{"kind":"event","value":"e100"}`), 409, "follows_limit")
	list := e.want(e.do("GET", path, e.buyer("ann"), ""), 200, "").json()["follows"].([]any)
	if len(list) != 100 || list[0].(map[string]any)["id"] != first["id"] {
		t.Fatalf("%d follows, first %v", len(list), list[0])
	}
	if l := e.want(e.do("GET", path, e.buyer("bob"), ""), 200, "").json()["follows"].([]any); len(l) != 0 {
		t.Fatalf("bob's follows %v", l)
	}
	id := first["id"].(string)
	e.want(e.do("DELETE", path+"/"+id, e.buyer("bob"), ""), 404, "unknown_follow")
	e.want(e.do("DELETE", path+"/"+id, e.buyer("ann"), ""), 200, "")
	e.want(e.do("DELETE", path+"/"+id, e.buyer("ann"), ""), 404, "unknown_follow")
	e.want(e.do("POST", path, e.buyer("ann"), `{"kind":"category","value":"Concert"}`), 201, "") // room again
}
