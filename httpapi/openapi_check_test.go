package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// openAPISpec is the subset of an OpenAPI 3.0 document that the
// conformance checker reads: paths, responses, and JSON schemas made of
// type, properties, required, additionalProperties, items, enum, pattern,
// minimum/maximum, minLength/maxLength, format date-time and $ref.
type openAPISpec struct {
	doc       map[string]any
	templates []pathTemplate
}

type pathTemplate struct {
	template string
	re       *regexp.Regexp
	literal  int // literal characters, to prefer /a/{x}:close over /a/{x}
}

var (
	specOnce sync.Once
	spec     *openAPISpec
	specErr  error
)

func loadSpec(t testing.TB) *openAPISpec {
	t.Helper()
	specOnce.Do(func() {
		var doc map[string]any
		if specErr = json.Unmarshal(openAPIDocument, &doc); specErr != nil {
			return
		}
		s := &openAPISpec{doc: doc}
		for tmpl := range doc["paths"].(map[string]any) {
			var re strings.Builder
			re.WriteString("^")
			literal := 0
			for rest := tmpl; rest != ""; {
				i := strings.IndexByte(rest, '{')
				if i < 0 {
					re.WriteString(regexp.QuoteMeta(rest))
					literal += len(rest)
					break
				}
				re.WriteString(regexp.QuoteMeta(rest[:i]))
				literal += i
				j := strings.IndexByte(rest, '}')
				re.WriteString("[^/]+")
				rest = rest[j+1:]
			}
			re.WriteString("$")
			s.templates = append(s.templates, pathTemplate{tmpl, regexp.MustCompile(re.String()), literal})
		}
		sort.Slice(s.templates, func(i, j int) bool { return s.templates[i].literal > s.templates[j].literal })
		spec = s
	})
	if specErr != nil {
		t.Fatalf("openapi.json: %v", specErr)
	}
	return spec
}

// checkResponse reports how a response differs from what the document
// says of (method, path, status): the status must be documented (or a
// default given), the content type listed, and a JSON body must match the
// schema. It returns nil when the path itself is not in the document (a 404
// for an unknown path is checked against the Problem schema).
func (s *openAPISpec) checkResponse(method, path string, status int, contentType string, body []byte) error {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	var op map[string]any
	for _, pt := range s.templates {
		if !pt.re.MatchString(path) {
			continue
		}
		item := s.doc["paths"].(map[string]any)[pt.template].(map[string]any)
		if o, ok := item[strings.ToLower(method)].(map[string]any); ok {
			op = o
			break
		}
	}
	if op == nil {
		// Unknown route or method: must be a problem.
		return s.checkValue(s.resolve(map[string]any{"$ref": "#/components/schemas/Problem"}), decodeAny(body), "$")
	}
	responses := op["responses"].(map[string]any)
	resp, ok := responses[strconv.Itoa(status)]
	if !ok {
		if resp, ok = responses["default"]; !ok {
			return fmt.Errorf("%s %s: status %d not documented", method, path, status)
		}
	}
	r := s.resolve(resp)
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		return nil
	}
	mediaType := strings.TrimSpace(strings.Split(contentType, ";")[0])
	media, ok := content[mediaType].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s %d: content type %q not documented", method, path, status, contentType)
	}
	if !strings.HasSuffix(mediaType, "json") {
		return nil
	}
	v := decodeAny(body)
	if err, ok := v.(error); ok {
		return fmt.Errorf("%s %s %d: body is not JSON: %v", method, path, status, err)
	}
	if err := s.checkValue(s.resolve(media["schema"]), v, "$"); err != nil {
		return fmt.Errorf("%s %s %d: %v", method, path, status, err)
	}
	return nil
}

func decodeAny(body []byte) any {
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return err
	}
	return v
}

func (s *openAPISpec) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = s.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

func (s *openAPISpec) checkValue(schema map[string]any, v any, at string) error {
	if err, ok := v.(error); ok {
		return fmt.Errorf("%s: not JSON: %v", at, err)
	}
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v not in enum %v", at, v, enum)
		}
	}
	switch schema["type"] {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want object, got %T", at, v)
		}
		props, _ := schema["properties"].(map[string]any)
		for _, req := range asStrings(schema["required"]) {
			if _, ok := obj[req]; !ok {
				return fmt.Errorf("%s: missing required %q", at, req)
			}
		}
		for k, val := range obj {
			p, ok := props[k]
			if !ok {
				if schema["additionalProperties"] == false {
					return fmt.Errorf("%s: member %q not in the schema", at, k)
				}
				continue
			}
			if err := s.checkValue(s.resolve(p), val, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want array, got %T", at, v)
		}
		items := s.resolve(schema["items"])
		for i, e := range arr {
			if err := s.checkValue(items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want string, got %T", at, v)
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			return fmt.Errorf("%s: %q does not match %s", at, str, p)
		}
		if n, ok := schema["minLength"].(float64); ok && float64(len(str)) < n {
			return fmt.Errorf("%s: shorter than %v", at, n)
		}
		if n, ok := schema["maxLength"].(float64); ok && float64(len(str)) > n {
			return fmt.Errorf("%s: longer than %v", at, n)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return fmt.Errorf("%s: %q is not RFC 3339", at, str)
			}
		}
	case "integer", "number":
		num, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s: want %s, got %T", at, schema["type"], v)
		}
		f, err := num.Float64()
		if err != nil {
			return fmt.Errorf("%s: %v", at, err)
		}
		if schema["type"] == "integer" && (f != math.Trunc(f) || strings.ContainsAny(num.String(), ".eE")) {
			return fmt.Errorf("%s: %s is not an integer", at, num)
		}
		if m, ok := schema["minimum"].(float64); ok && f < m {
			return fmt.Errorf("%s: %v below minimum %v", at, f, m)
		}
		if m, ok := schema["maximum"].(float64); ok && f > m {
			return fmt.Errorf("%s: %v above maximum %v", at, f, m)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want boolean, got %T", at, v)
		}
	}
	return nil
}

func asStrings(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		out = append(out, e.(string))
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// TestOpenAPIDocument checks the document itself: every $ref resolves, every
// route of the server is in it, every problem code is in the Problem enum.
func TestOpenAPIDocument(t *testing.T) {
	s := loadSpec(t)
	if s.doc["openapi"] != "3.0.3" {
		t.Errorf("openapi version %v", s.doc["openapi"])
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && s.resolve(v) == nil {
				t.Errorf("%s: $ref %s does not resolve", at, ref)
			}
			for k, e := range v {
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(s.doc, "#")

	paths := s.doc["paths"].(map[string]any)
	documented := map[string]bool{}
	for tmpl, item := range paths {
		for method := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+tmpl] = true
		}
	}
	examples := map[route]string{
		routeAdminPutSale: "/v1/admin/sales/{sale_id}", routeAdminCloseSale: "/v1/admin/sales/{sale_id}:close",
		routeAdminReopenSale: "/v1/admin/sales/{sale_id}:reopen", routeAdminSaleOrders: "/v1/admin/sales/{sale_id}/orders",
		routeAdminRefund: "/v1/admin/orders/{order_id}/refund", routeGetSale: "/v1/sales/{sale_id}",
		routePurchase: "/v1/sales/{sale_id}/purchase", routeGetOrder: "/v1/orders/{order_id}",
		routeCancelOrder: "/v1/orders/{order_id}/cancel",
	}
	for r := routeNone + 1; r < routeCount; r++ {
		tmpl, ok := examples[r]
		if !ok {
			for p := range paths {
				if got, _ := matchRoute([]byte(p)); got == r {
					tmpl = p
				}
			}
		}
		if !documented[routes[r].method+" "+tmpl] {
			t.Errorf("route %s (%s %s) not in openapi.json", routes[r].name, routes[r].method, tmpl)
		}
		if r2, _ := matchRoute([]byte(strings.NewReplacer("{sale_id}", "s1", "{order_id}", "s1.x").Replace(tmpl))); r2 != r {
			t.Errorf("documented path %s routes to %s, want %s", tmpl, routes[r2].name, routes[r].name)
		}
	}
	problem := s.resolve(map[string]any{"$ref": "#/components/schemas/Problem"})
	enum := map[string]bool{}
	for _, c := range asSlice(problem["properties"].(map[string]any)["code"].(map[string]any)["enum"]) {
		enum[c.(string)] = true
	}
	for code := range problemTable {
		if !enum[code] {
			t.Errorf("problem code %s not in the Problem.code enum", code)
		}
	}
	for code := range enum {
		if _, ok := problemTable[code]; !ok {
			t.Errorf("Problem.code enum lists %s, which the server never sends", code)
		}
	}
}

// TestOpenAPICheckerCatches makes sure the checker can fail.
func TestOpenAPICheckerCatches(t *testing.T) {
	s := loadSpec(t)
	order := `{"order_id":"s.x","status":"pending","sale_id":"s","tier":"a","quantity":1,"amount_cents":1,"currency":"EUR",
		"needs_refund":false,"user_id":"u","created_at":"2026-01-01T00:00:00.000Z","expires_at":"2026-01-01T00:00:00.000Z",
		"updated_at":"2026-01-01T00:00:00.000Z","checked_in":[],"duplicate_charges":[]}`
	if err := s.checkResponse("GET", "/v1/orders/s.x", 200, "application/json", []byte(order)); err != nil {
		t.Fatalf("a valid order: %v", err)
	}
	for name, bad := range map[string]string{
		"missing member": strings.Replace(order, `"tier":"a",`, ``, 1),
		"extra member":   strings.Replace(order, `"tier":"a",`, `"tier":"a","x":1,`, 1),
		"bad enum":       strings.Replace(order, `"pending"`, `"waiting"`, 1),
		"bad type":       strings.Replace(order, `"quantity":1`, `"quantity":"1"`, 1),
		"bad time":       strings.Replace(order, `"2026-01-01T00:00:00.000Z","expires_at"`, `"yesterday","expires_at"`, 1),
		"not integer":    strings.Replace(order, `"quantity":1`, `"quantity":1.5`, 1),
	} {
		if err := s.checkResponse("GET", "/v1/orders/s.x", 200, "application/json", []byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := s.checkResponse("GET", "/v1/orders/s.x", 418, "application/json", []byte(order)); err == nil {
		t.Errorf("an undocumented status was accepted")
	}
	if err := s.checkResponse("GET", "/v1/orders/s.x", 200, "text/html", []byte(order)); err == nil {
		t.Errorf("an undocumented content type was accepted")
	}
}
