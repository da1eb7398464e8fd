package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The README is a user's first contact: these tests paste its lines and
// hold its claims against the code, so that it cannot drift.

// readmeSection returns the text of the README's "## title" section.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	start := strings.Index(s, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("README has no section %q", title)
	}
	s = s[start+1:]
	if end := strings.Index(s[3:], "\n## "); end >= 0 {
		s = s[:end+3]
	}
	return s
}

// shellBlocks returns the contents of the ```sh blocks of text, in order.
func shellBlocks(text string) []string {
	var blocks []string
	for {
		start := strings.Index(text, "```sh\n")
		if start < 0 {
			return blocks
		}
		text = text[start+len("```sh\n"):]
		end := strings.Index(text, "```")
		if end < 0 {
			return blocks
		}
		blocks = append(blocks, text[:end])
		text = text[end:]
	}
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// TestReadmeAPILinesWork pastes every shell block of "The API in short",
// in the order a reader meets them, into bash in a directory laid out like
// the repository (onsale-data/, examples/sales.json) with the server's URL
// in place of 127.0.0.1:8080. No line may get a problem answer its comment
// does not announce, and the sale, the orders and the ticket end as the
// README says.
func TestReadmeAPILinesWork(t *testing.T) {
	needTools(t, "bash", "curl", "openssl", "sed", "cut", "date")
	dir := t.TempDir()
	base, _, _ := startRun(t, "-data", filepath.Join(dir, "onsale-data"))
	example, err := os.ReadFile(filepath.Join("examples", "sales.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "examples"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "examples", "sales.json"), example, 0o644); err != nil {
		t.Fatal(err)
	}

	script := strings.Join(shellBlocks(readmeSection(t, "The API in short")), "")
	const urlLine = "URL=http://127.0.0.1:8080\n"
	if !strings.Contains(script, urlLine) {
		t.Fatalf("the README no longer sets %q:\n%s", urlLine, script)
	}
	script = strings.Replace(script, urlLine, "URL="+base+"\n", 1)
	script += "\necho; echo \"ORDER=$ORDER SPARE=$SPARE\"\n"
	cmd := exec.Command("bash", "-eu", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's lines failed: %v\n%s\nscript:\n%s", err, out, script)
	}
	// A problem answer is allowed only where the README's comment on the
	// line announces its code (a retry that shows a refusal, for example).
	for _, m := range regexp.MustCompile(`"code":"([a-z_]+)"`).FindAllSubmatch(out, -1) {
		if !regexp.MustCompile(`#[^\n]*\b` + string(m[1]) + `\b`).MatchString(script) {
			t.Fatalf("a README line got a problem answer (%s) that its comment does not announce:\n%s", m[1], out)
		}
	}
	m := regexp.MustCompile(`ORDER=(\S+) SPARE=(\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no order ids in:\n%s", out)
	}
	order, spare := string(m[1]), string(m[2])

	sec := readSecrets(t, filepath.Join(dir, "onsale-data"))
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	_, sales := c.do("GET", "/v1/admin/sales", admin, "")
	var ids []string
	for _, s := range sales["sales"].([]any) {
		ids = append(ids, s.(map[string]any)["id"].(string))
	}
	for _, id := range []string{"demo", "tour-lisbon", "tour-porto"} {
		if !slices.Contains(ids, id) {
			t.Errorf("sale %s missing after the README's admin lines: %v", id, ids)
		}
	}
	if st, sale := c.do("GET", "/v1/sales/demo", nil, ""); st != 200 || sale["status"] != "open" {
		t.Errorf("demo sale after close and reopen: %d %v", st, sale)
	}
	if st, o := c.do("GET", "/v1/orders/"+spare, admin, ""); st != 200 || o["status"] != "cancelled" {
		t.Errorf("the cancelled order: %d %v", st, o)
	}
	// The paid order was shown with its tickets before the door block.
	if !bytes.Contains(out, []byte(`"status":"paid"`)) || !bytes.Contains(out, []byte(`"tickets":[`)) {
		t.Errorf("the paid order with its tickets is not in the output:\n%s", out)
	}
	if st, o := c.do("GET", "/v1/orders/"+order, admin, ""); st != 200 || o["status"] != "refunded" {
		t.Errorf("the order after the door block's refund: %d %v", st, o)
	}
}

// TestReadmeDemoSaleIsTheWelcomeSale: the demo sale the first start prints
// and the README's are one sale (only its times differ: the printed one
// opens at that start).
func TestReadmeDemoSaleIsTheWelcomeSale(t *testing.T) {
	readme := demoSaleIn(t, "README", readmeSection(t, "The API in short"))
	_, stderr, _ := startRun(t, "-data", t.TempDir())
	welcome := demoSaleIn(t, "the welcome", stderr.String())
	now := time.Now()
	for name, sale := range map[string]map[string]any{"README": readme, "welcome": welcome} {
		opens, err1 := time.Parse(time.RFC3339, sale["opens_at"].(string))
		closes, err2 := time.Parse(time.RFC3339, sale["closes_at"].(string))
		if err1 != nil || err2 != nil || opens.After(now) || !closes.After(now.Add(24*time.Hour)) {
			t.Errorf("%s's demo sale is not open now and for a day at least: %v to %v", name, sale["opens_at"], sale["closes_at"])
		}
		delete(sale, "opens_at")
		delete(sale, "closes_at")
	}
	r, _ := json.Marshal(readme)
	w, _ := json.Marshal(welcome)
	if !bytes.Equal(r, w) {
		t.Errorf("the demo sales differ:\nREADME:  %s\nwelcome: %s", r, w)
	}
}

// demoSaleIn finds `curl -s -X PUT $URL/v1/admin/sales/demo ... -d '{...}'`
// in text and decodes its body.
func demoSaleIn(t *testing.T, where, text string) map[string]any {
	t.Helper()
	start := strings.Index(text, "curl -s -X PUT $URL/v1/admin/sales/demo ")
	if start < 0 {
		t.Fatalf("%s has no PUT of the demo sale", where)
	}
	text = text[start:]
	open := strings.Index(text, "-d '")
	if open < 0 {
		t.Fatalf("%s: the demo sale's PUT has no -d '...'", where)
	}
	text = text[open+len("-d '"):]
	end := strings.Index(text, "'")
	var sale map[string]any
	if end < 0 || json.Unmarshal([]byte(text[:end]), &sale) != nil {
		t.Fatalf("%s: the demo sale is not JSON: %.300s", where, text)
	}
	return sale
}

// TestReadmeExampleSalesLoad: examples/sales.json, which the README loads, is
// accepted as it is by POST /v1/admin/sales:load and makes the sales it lists.
func TestReadmeExampleSalesLoad(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("examples", "sales.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Sales []struct {
			ID    string           `json:"id"`
			Tiers []map[string]any `json:"tiers"`
		} `json:"sales"`
	}
	if err := json.Unmarshal(raw, &file); err != nil || len(file.Sales) < 2 {
		t.Fatalf("examples/sales.json: %v, %d sales", err, len(file.Sales))
	}
	dir := t.TempDir()
	base, _, _ := startRun(t, "-data", dir)
	admin := map[string]string{"Authorization": "Bearer " + readSecrets(t, dir).AdminToken}
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	st, got := c.do("POST", "/v1/admin/sales:load", admin, string(raw))
	if st != 200 {
		t.Fatalf("sales:load of examples/sales.json: %d %v", st, got)
	}
	if n := len(got["sales"].([]any)); n != len(file.Sales) {
		t.Errorf("%d sales answered, the file has %d", n, len(file.Sales))
	}
	for _, want := range file.Sales {
		st, sale := c.do("GET", "/v1/sales/"+want.ID, nil, "")
		if st != 200 {
			t.Errorf("sale %s: %d %v", want.ID, st, sale)
			continue
		}
		if tiers, _ := sale["tiers"].([]any); len(tiers) != len(want.Tiers) {
			t.Errorf("sale %s: %d tiers, the file has %d", want.ID, len(tiers), len(want.Tiers))
		}
	}
}

// TestReadmeSessionLifetime: the README says how long a session token
// lasts; POST /v1/sessions must answer that.
func TestReadmeSessionLifetime(t *testing.T) {
	if !strings.Contains(readmeSection(t, "The API in short"), "A session token lasts one\nhour") {
		t.Fatal("the README no longer says that a session token lasts one hour")
	}
	base, _, _ := startRun(t, "-data", t.TempDir())
	// bcrypt under -race on a loaded machine can take seconds: the limit only
	// keeps a hung server from hanging the test.
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	if st, m := c.do("POST", "/v1/users", nil, `{"username":"bob","password":"correct horse"}`); st != 201 {
		t.Fatalf("register %d %v", st, m)
	}
	before := time.Now().Truncate(time.Second)
	st, m := c.do("POST", "/v1/sessions", nil, `{"username":"bob","password":"correct horse"}`)
	after := time.Now()
	if st != 200 {
		t.Fatalf("login %d %v", st, m)
	}
	exp, err := time.Parse(time.RFC3339, m["expires_at"].(string))
	if err != nil || exp.Before(before.Add(time.Hour)) || exp.After(after.Add(time.Hour)) {
		t.Errorf("expires_at %v for a login between %v and %v: not one hour (%v)", m["expires_at"], before, after, err)
	}
}

// TestReadmeCommandsExist: every package a `go run`, `go test` or `go build`
// line of the READMEs names (run from the repository's root) has Go files,
// and every relative link is a file, so that a move (reliability/ went
// under bench/) cannot leave a dead command behind; and the READMEs stand
// alone, without pointing at the team's private notes.
func TestReadmeCommandsExist(t *testing.T) {
	command := regexp.MustCompile(`go (?:run|test|build) [^\n]*`)
	link := regexp.MustCompile(`\]\(([^)#:\s]+)(?:#[^)]*)?\)`)
	for _, doc := range []string{"README.md", "bench/README.md"} {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, line := range command.FindAll(raw, -1) {
			for _, arg := range strings.Fields(string(line)) {
				arg = strings.Trim(arg, "`'\"(),;:")
				if !strings.HasPrefix(arg, "./") {
					continue
				}
				pkg := strings.TrimSuffix(strings.TrimSuffix(arg, "..."), "/")
				if goFiles, _ := filepath.Glob(filepath.Join(pkg, "*.go")); len(goFiles) == 0 {
					t.Errorf("%s: %q: %s has no Go files", doc, line, arg)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Errorf("%s: no go command found to check", doc)
		}
		for _, m := range link.FindAllSubmatch(raw, -1) {
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), string(m[1]))); err != nil {
				t.Errorf("%s links to %s: %v", doc, m[1], err)
			}
		}
		for _, private := range []string{"DESIGN.md", "/work/"} {
			if bytes.Contains(raw, []byte(private)) {
				t.Errorf("%s refers to %s, which is not in the repository", doc, private)
			}
		}
	}
}

// TestTopLevelLayout: the product card fixes the top level. Go code lives in
// main.go (and its tests) and under engine/, wal/, httpapi/ and bench/ only;
// other top-level folders hold no Go code.
func TestTopLevelLayout(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	card := []string{"engine", "wal", "httpapi", "bench"}
	for _, e := range entries {
		name := e.Name()
		switch {
		case !e.IsDir():
			if strings.HasSuffix(name, ".go") && name != "main.go" && !strings.HasSuffix(name, "_test.go") {
				t.Errorf("top-level Go file %s: the card allows main.go only", name)
			}
		case slices.Contains(card, name) || name == ".git":
		default:
			filepath.WalkDir(name, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
					t.Errorf("Go code in %s, outside the card's packages (%v)", path, card)
					return filepath.SkipAll
				}
				return nil
			})
		}
	}
}

// TestReadmeListsEveryErrorCode: every code of openapi.json's Problem enum
// (a test in httpapi holds that enum equal to the codes the server sends)
// is named in the README, so a new code cannot go undocumented.
func TestReadmeListsEveryErrorCode(t *testing.T) {
	raw, err := os.ReadFile("httpapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	codes := doc.Components.Schemas.Problem.Properties.Code.Enum
	if len(codes) == 0 {
		t.Fatal("openapi.json has no Problem code enum")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range codes {
		if !bytes.Contains(readme, []byte("`"+c+"`")) {
			t.Errorf("README does not name the error code %q", c)
		}
	}
}
