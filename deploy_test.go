package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/onsale/onsale/httpapi"
)

// The files in deploy/ name series of /metrics; these tests read them as
// Prometheus and Grafana would and check every series they name against
// the /metrics page of a running onsale that sold, was paid and was read.
//
// Expressions are parsed with metricsql, a superset of PromQL: it catches
// typos and yields the metric names, but would not refuse a MetricsQL-only
// construct; `promtool check rules` is the final word (the README says so).

// prometheusOwnSeries are names Prometheus makes itself, not onsale.
var prometheusOwnSeries = []string{"up"}

func TestAlertRulesNameExistingSeries(t *testing.T) {
	families := scrapeBusyServer(t)
	raw, err := os.ReadFile("deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key (expresion:, anotations:) is an error, as in promtool
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	if len(rules.Groups) == 0 {
		t.Fatal("alerts.yml has no groups")
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			where := fmt.Sprintf("alerts.yml %s/%s", g.Name, r.Alert)
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("%s: no alert name, or a duplicate", where)
			}
			seen[r.Alert] = true
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: wants a severity label, a summary and a description", where)
			}
			for k, text := range r.Annotations {
				// Prometheus defines these before every annotation template.
				defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
				if _, err := template.New(k).Funcs(alertTemplateFuncs).Parse(defs + text); err != nil {
					t.Errorf("%s: annotation %s: %v", where, k, err)
				}
			}
			checkNames(t, where, r.Expr, families)
		}
	}
	if len(seen) < 8 {
		t.Errorf("alerts.yml has %d alerts; the README describes more", len(seen))
	}
}

func TestDashboardNamesExistingSeries(t *testing.T) {
	families := scrapeBusyServer(t)
	raw, err := os.ReadFile("deploy/grafana/onsale.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("onsale.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("onsale.json: no uid or title")
	}
	var exprs int
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				exprs++
				checkNames(t, "onsale.json panel "+p.Title, grafanaToPromQL(tg.Expr), families)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if exprs < 20 {
		t.Errorf("onsale.json: %d queries found; is the panel layout still read?", exprs)
	}
	labelValues := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_]+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("onsale.json variable %s: %v", v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("onsale.json variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		checkNames(t, "onsale.json variable "+v.Name, m[1], families)
	}
}

// checkNames parses a PromQL expression and reports each metric it names
// that /metrics does not have (a histogram's or summary's by its _bucket,
// _sum or _count series).
func checkNames(t *testing.T, where, expr string, families map[string]*dto.MetricFamily) {
	t.Helper()
	e, err := metricsql.Parse(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return
	}
	var names []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		me, ok := x.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, lfs := range me.LabelFilterss {
			if len(lfs) > 0 && lfs[0].Label == "__name__" && !lfs[0].IsRegexp {
				names = append(names, lfs[0].Value)
			}
		}
	})
	if len(names) == 0 {
		t.Errorf("%s: %q names no metric", where, expr)
	}
	for _, n := range names {
		if !seriesExists(n, families) {
			t.Errorf("%s: %s is not in /metrics", where, n)
		}
	}
}

func seriesExists(name string, families map[string]*dto.MetricFamily) bool {
	if families[name] != nil || slices.Contains(prometheusOwnSeries, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok || families[base] == nil {
			continue
		}
		switch families[base].GetType() {
		case dto.MetricType_HISTOGRAM:
			return true
		case dto.MetricType_SUMMARY:
			return suffix != "_bucket"
		}
	}
	return false
}

// grafanaToPromQL replaces the dashboard's variables with what Grafana
// would put there.
func grafanaToPromQL(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$instance", ".*").Replace(expr)
}

// alertTemplateFuncs are the template functions Prometheus gives alert
// annotations that the rules use; a template using another fails to parse.
var alertTemplateFuncs = template.FuncMap{
	"humanize": fmt.Sprint, "humanize1024": fmt.Sprint, "humanizeDuration": fmt.Sprint,
	"humanizePercentage": fmt.Sprint,
}

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"` // a string or {"query": ...}, by type
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// scrapeBusyServer runs onsale on a temporary directory, makes it sell,
// refuse, take a payment and serve reads, and returns its /metrics as
// Prometheus parses it. Every family must have a HELP text: this is the
// whole binary's page, with the log's and main's families.
func scrapeBusyServer(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	dir := t.TempDir()
	base, _, _ := startRun(t, "-data", dir)
	c := &client{t: t, base: base, http: &http.Client{Timeout: clientTimeout}}
	sec := readSecrets(t, dir)
	admin := map[string]string{"Authorization": "Bearer " + sec.AdminToken}
	if st, m := c.do("PUT", "/v1/admin/sales/s1", admin, demoSale(1)); st != 201 {
		t.Fatalf("put sale: %d %v", st, m)
	}
	buy := func(user, key string) (int, map[string]any) {
		tok, _ := httpapi.MintUserToken([]byte(sec.UserSecret), user, time.Now(), time.Hour)
		return c.do("POST", "/v1/sales/s1/purchase", map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": key},
			`{"tier":"floor","quantity":1}`)
	}
	st, m := buy("u1", "k1")
	if st != 201 {
		t.Fatalf("purchase: %d %v", st, m)
	}
	order, _ := m["order_id"].(string)
	if st, m := buy("u2", "k1"); st != 409 {
		t.Fatalf("purchase of the sold out tier: %d %v", st, m)
	}
	body := fmt.Sprintf(`{"id":"evt_1","type":"payment.succeeded","order_id":%q,"amount_cents":5000,"currency":"EUR"}`, order)
	paySecret := strings.Split(sec.PaymentSecret, ",")[0]
	if st, m := c.do("POST", "/v1/payments/webhook",
		map[string]string{"Onsale-Signature": httpapi.SignWebhook([]byte(paySecret), []byte(body), time.Now())}, body); st != 200 {
		t.Fatalf("webhook: %d %v", st, m)
	}
	if st, m := c.do("GET", "/v1/sales/s1", nil, ""); st != 200 {
		t.Fatalf("get sale: %d %v", st, m)
	}

	resp, err := c.http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	for name, mf := range families {
		if mf.GetHelp() == "" {
			t.Errorf("/metrics: %s has no HELP text (httpapi/metrics_help.go)", name)
		}
	}
	return families
}
