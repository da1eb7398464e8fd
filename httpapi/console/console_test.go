package console

import (
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func get(name, ifNoneMatch string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/console/" + name)
	if ifNoneMatch != "" {
		ctx.Request.Header.Set("If-None-Match", ifNoneMatch)
	}
	Serve(&ctx, []byte(name))
	return &ctx
}

// TestServeHeaders: every file, and the 404, carries the strict policy;
// every file has a content type; an ETag revalidates to 304.
func TestServeHeaders(t *testing.T) {
	names := []string{""}
	for _, a := range Assets() {
		names = append(names, a.Name)
	}
	for _, name := range append(names, "nope.js", "../console.go") {
		ctx := get(name, "")
		h := &ctx.Response.Header
		if got := string(h.Peek("Content-Security-Policy")); got != ContentSecurityPolicy {
			t.Errorf("%q: CSP %q", name, got)
		}
		if string(h.Peek("X-Content-Type-Options")) != "nosniff" || string(h.Peek("Referrer-Policy")) != "no-referrer" {
			t.Errorf("%q: headers %s", name, h.String())
		}
		_, known := files[name]
		if !known {
			if ctx.Response.StatusCode() != 404 {
				t.Errorf("%q: status %d, want 404", name, ctx.Response.StatusCode())
			}
			continue
		}
		if ctx.Response.StatusCode() != 200 || len(h.ContentType()) == 0 || strings.HasPrefix(string(h.ContentType()), "text/plain") {
			t.Errorf("%q: status %d, content type %q", name, ctx.Response.StatusCode(), h.ContentType())
		}
		if again := get(name, string(h.Peek("ETag"))); again.Response.StatusCode() != 304 || len(again.Response.Body()) != 0 {
			t.Errorf("%q: revalidation answered %d", name, again.Response.StatusCode())
		}
	}
	if !strings.Contains(ContentSecurityPolicy, "script-src 'self';") || strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Errorf("policy %q", ContentSecurityPolicy)
	}
}

var (
	htmlRef   = regexp.MustCompile(`(?:src|href)="([^"#]+)"`)
	importRef = regexp.MustCompile(`(?:from\s+|import\()"\./([^"]+)"|module:\s*"\./([^"]+)"`)
)

// TestAssetsSelfContained: everything the page loads is embedded (a
// missing module would be a 404 in the browser), and nothing would break
// the policy or leave the origin: no inline script or style, no event
// handler attributes, no innerHTML, no remote URL.
func TestAssetsSelfContained(t *testing.T) {
	page := string(files[""].body)
	imports := 0
	for _, m := range htmlRef.FindAllStringSubmatch(page, -1) {
		if _, ok := files[m[1]]; !ok {
			t.Errorf("index.html refers to %q, which is not embedded", m[1])
		}
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(page) || strings.Contains(page, "<style") {
		t.Error("index.html has inline script or style, which the policy blocks")
	}
	for _, a := range Assets() {
		body := string(files[a.Name].body)
		if regexp.MustCompile(`\son[a-z]+="|style="|innerHTML|outerHTML\s*=|eval\(|new Function`).MatchString(body) && a.Name != "console.css" {
			t.Errorf("%s: inline handler, inline style or HTML from strings", a.Name)
		}
		if m := regexp.MustCompile(`https?://[^\s"']+`).FindAllString(body, -1); len(m) > 0 {
			for _, u := range m {
				if u != "http://www.w3.org/2000/svg" {
					t.Errorf("%s: remote URL %s", a.Name, u)
				}
			}
		}
		if !strings.HasSuffix(a.Name, ".js") {
			continue
		}
		for _, m := range importRef.FindAllStringSubmatch(body, -1) {
			ref := m[1] + m[2]
			imports++
			if _, ok := files[ref]; !ok {
				t.Errorf("%s imports %q, which is not embedded", a.Name, ref)
			}
		}
	}
	if imports < 20 { // app.js alone names ten screen modules
		t.Errorf("found only %d imports: the pattern no longer reads the modules", imports)
	}
}
