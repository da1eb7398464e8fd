package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"
)

// Report is everything one harness run measured. It is written as
// results.json as is.
type Report struct {
	Scenario    string         `json:"scenario"`
	Started     time.Time      `json:"started"`
	Machine     Machine        `json:"machine"`
	LoadModel   string         `json:"load_model"`
	Load        LoadJSON       `json:"load"`
	Workload    any            `json:"workload"`
	Systems     []SystemResult `json:"systems"`
	Ratios      []Ratio        `json:"ratios"`
	AuditFailed bool           `json:"audit_failed"`
	Failed      []string       `json:"failed_systems,omitempty"`
}

// LoadJSON is the load model as written in the report.
type LoadJSON struct {
	Clients     int     `json:"clients,omitempty"`
	RatePerSec  float64 `json:"rate_per_sec,omitempty"`
	MaxInFlight int     `json:"max_in_flight,omitempty"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"`
	MaxRequests int64   `json:"max_requests"`
	TimeoutS    float64 `json:"timeout_s"`
}

// SystemResult is one system's figures.
type SystemResult struct {
	Name            string                 `json:"name"`
	Skipped         string                 `json:"skipped,omitempty"`
	Error           string                 `json:"error,omitempty"`
	StopError       string                 `json:"stop_error,omitempty"`
	StoppedBy       string                 `json:"stopped_by,omitempty"`
	ElapsedS        float64                `json:"elapsed_s"`
	Requests        int64                  `json:"requests"`
	RequestsPerSec  float64                `json:"requests_per_sec"`
	GoodputPerSec   float64                `json:"goodput_per_sec"` // definitive business answers per second
	Purchases       int64                  `json:"purchases"`       // 2xx purchase answers
	PurchasesPerSec float64                `json:"purchases_per_sec"`
	Errors          int64                  `json:"errors"`
	ErrorRate       float64                `json:"error_rate"`
	SoldOutAfterS   float64                `json:"sold_out_after_s"` // first sold_out since the start; -1 never
	LateSends       int64                  `json:"late_sends,omitempty"`
	MaxSendLagMs    float64                `json:"max_send_lag_ms,omitempty"`
	Latency         Percentiles            `json:"latency"`
	LatencyByOp     map[string]Percentiles `json:"latency_by_op"`
	LatencyBusiness Percentiles            `json:"latency_business"`       // answers that were a business outcome
	LatencyShed     *Percentiles           `json:"latency_shed,omitempty"` // 429 answers, when there were any
	// Open loop: the same from each request's actual send rather than its
	// schedule, i.e. without the time it waited for the generator.
	SentBusiness *Percentiles    `json:"latency_from_send_business,omitempty"`
	SentShed     *Percentiles    `json:"latency_from_send_shed,omitempty"`
	Curve        PercentileCurve `json:"latency_curve"`
	Codes        []StatusCount   `json:"answers"`
	Samples      []Sample        `json:"samples"`
	PeakRSSBytes int64           `json:"peak_rss_bytes"`
	DiskBytes    int64           `json:"disk_bytes"`
	Audit        *AuditReport    `json:"audit,omitempty"`
	ProfileNote  string          `json:"profile,omitempty"`
}

// Sample is one interval of a run.
type Sample struct {
	AtS             float64 `json:"at_s"`
	RequestsPerSec  float64 `json:"requests_per_sec"`
	GoodputPerSec   float64 `json:"goodput_per_sec"`
	PurchasesPerSec float64 `json:"purchases_per_sec"`
	ErrorsPerSec    float64 `json:"errors_per_sec"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	RSSBytes        int64   `json:"rss_bytes"`
	DiskBytes       int64   `json:"disk_bytes"`
}

// Ratio compares onsale with another system.
type Ratio struct {
	Name    string  `json:"name"` // "onsale / ceiling"
	Goodput float64 `json:"goodput"`
	P99     float64 `json:"p99"`
}

func newReport(cfg *Config, started time.Time) *Report {
	r := &Report{
		Scenario: cfg.Scenario, Started: started.UTC(), Machine: thisMachine(),
		LoadModel: describeLoad(&cfg.Load),
		Load: LoadJSON{
			WarmupS: cfg.Load.Warmup.Seconds(), DurationS: cfg.Load.Duration.Seconds(),
			MaxRequests: cfg.Load.MaxRequests, TimeoutS: cfg.Timeout.Seconds(),
		},
	}
	if cfg.Load.OpenLoop() {
		r.Load.RatePerSec, r.Load.MaxInFlight = cfg.Load.RatePerSec, cfg.Load.MaxInFlight
	} else {
		r.Load.Clients = cfg.Load.Clients
	}
	if cfg.Scenario == ScenarioFlash {
		r.Workload = cfg.Flash
	} else {
		r.Workload = cfg.Steady
	}
	return r
}

func (r *SystemResult) fill(t Totals, st LoadStats) {
	r.StoppedBy = st.StoppedBy
	r.ElapsedS = st.Elapsed.Seconds()
	r.Requests, r.Purchases, r.Errors, r.LateSends = t.Requests, t.Purchases, t.Errors, t.LateSends
	if r.ElapsedS > 0 {
		r.RequestsPerSec = float64(t.Requests) / r.ElapsedS
		r.GoodputPerSec = float64(t.Business) / r.ElapsedS
		r.PurchasesPerSec = float64(t.Purchases) / r.ElapsedS
	}
	if t.Requests > 0 {
		r.ErrorRate = float64(t.Errors) / float64(t.Requests)
	}
	if t.FirstSoldOut >= 0 {
		r.SoldOutAfterS = t.FirstSoldOut.Seconds()
	}
	r.MaxSendLagMs = float64(t.MaxSendLag.Microseconds()) / 1000
	r.Latency = Summarize(t.All)
	r.LatencyBusiness = Summarize(t.BusinessLatency)
	if t.ShedLatency.TotalCount() > 0 {
		shed := Summarize(t.ShedLatency)
		r.LatencyShed = &shed
		sent := Summarize(t.ShedSent)
		r.SentShed = &sent
	}
	if t.MaxSendLag > 0 { // open loop: sends could lag their schedule
		sent := Summarize(t.BusinessSent)
		r.SentBusiness = &sent
	}
	r.Curve = curveOf(t.All)
	r.LatencyByOp = map[string]Percentiles{}
	for op, h := range t.ByOp {
		if h.TotalCount() > 0 {
			r.LatencyByOp[op] = Summarize(h)
		}
	}
	r.Codes = t.Codes
	for _, s := range r.Samples {
		r.PeakRSSBytes = max(r.PeakRSSBytes, s.RSSBytes)
	}
}

// measured reports whether the system ran.
func (r *SystemResult) measured() bool { return r.Skipped == "" && r.Error == "" && r.Requests > 0 }

// finish computes ratios and the verdict.
func (r *Report) finish() {
	byName := map[string]*SystemResult{}
	for i := range r.Systems {
		s := &r.Systems[i]
		byName[s.Name] = s
		if s.Audit != nil && !s.Audit.Passed {
			r.AuditFailed = true
		}
		if s.Error != "" {
			r.Failed = append(r.Failed, s.Name)
		}
	}
	on, ok := byName[SysOnsale]
	if !ok {
		on, ok = byName[SysExternal]
	}
	if !ok || !on.measured() {
		return
	}
	for _, other := range []string{SysCeiling, SysRedisDurable, SysRedis, SysPostgres} {
		o, ok := byName[other]
		if !ok || !o.measured() || o.GoodputPerSec == 0 {
			continue
		}
		ratio := Ratio{Name: SysOnsale + " / " + other, Goodput: on.GoodputPerSec / o.GoodputPerSec}
		if o.Latency.P99Ms > 0 {
			ratio.P99 = on.Latency.P99Ms / o.Latency.P99Ms
		}
		r.Ratios = append(r.Ratios, ratio)
	}
}

// WriteFiles writes results.json, summary.md and the charts into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	var md strings.Builder
	r.Markdown(&md)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	return r.WriteCharts(dir)
}

// Table writes the terminal table.
func (r *Report) Table(w io.Writer) {
	fmt.Fprintf(w, "\nscenario %s, %s\n\n", r.Scenario, r.LoadModel)
	fmt.Fprintf(w, "%-14s %10s %10s %9s %8s %8s %8s %8s %9s %8s %7s  %s\n",
		"system", "req/s", "goodput/s", "purchases", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "sold", "audit")
	for _, s := range r.Systems {
		if !s.measured() {
			why := s.Skipped
			if why == "" {
				why = s.Error
			}
			if why == "" {
				why = "no requests measured"
			}
			fmt.Fprintf(w, "%-14s %s\n", s.Name, oneLine(why))
			continue
		}
		fmt.Fprintf(w, "%-14s %10.0f %10.0f %9d %8.2f %8.2f %8.2f %8.2f %9.2f %8d %7s  %s\n",
			s.Name, s.RequestsPerSec, s.GoodputPerSec, s.Purchases, s.Latency.P50Ms, s.Latency.P90Ms,
			s.Latency.P99Ms, s.Latency.P999Ms, s.Latency.MaxMs, s.Errors, soldOut(s.SoldOutAfterS), auditWord(s.Audit))
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w)
		for _, ra := range r.Ratios {
			fmt.Fprintf(w, "%-26s goodput x%.2f   p99 x%.2f\n", ra.Name, ra.Goodput, ra.P99)
		}
	}
	for _, s := range r.Systems {
		if !s.measured() {
			continue
		}
		var errs []string
		for _, c := range s.Codes {
			if c.Status >= 200 && c.Status < 300 {
				continue
			}
			errs = append(errs, fmt.Sprintf("%d %s: %d", c.Status, c.Code, c.Count))
		}
		if len(errs) > 0 {
			fmt.Fprintf(w, "\n%s non-2xx answers: %s", s.Name, strings.Join(errs, ", "))
		}
	}
	fmt.Fprintln(w)
	for _, s := range r.Systems {
		if s.Audit != nil && !s.Audit.Passed {
			fmt.Fprintf(w, "\n!!! AUDIT FAILED for %s: %v\n", s.Name, s.Audit.ByRule)
			for _, v := range s.Audit.Violations {
				fmt.Fprintf(w, "!!!   %s: %s\n", v.Rule, v.Detail)
			}
		}
	}
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func soldOut(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", s)
}

func auditWord(a *AuditReport) string {
	switch {
	case a == nil:
		return "-"
	case a.Passed:
		return "passed"
	default:
		return "FAILED"
	}
}

// Markdown writes the summary.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "# onsale bench: %s\n\n", r.Scenario)
	fmt.Fprintf(w, "%s, %s/%s, %d CPUs, %s. Load: %s.\n\n", r.Started.Format(time.RFC3339), r.Machine.GOOS,
		r.Machine.GOARCH, r.Machine.CPUs, r.Machine.GoVersion, r.LoadModel)
	fmt.Fprintln(w, "| system | req/s | goodput/s | purchases | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | sold out after | peak RSS MiB | audit |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, s := range r.Systems {
		if !s.measured() {
			why := s.Skipped
			if why == "" {
				why = s.Error
			}
			fmt.Fprintf(w, "| %s | %s |||||||||||\n", s.Name, strings.ReplaceAll(oneLine(why), "|", "/"))
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %s | %.0f | %s |\n",
			s.Name, s.RequestsPerSec, s.GoodputPerSec, s.Purchases, s.Latency.P50Ms, s.Latency.P90Ms, s.Latency.P99Ms,
			s.Latency.P999Ms, s.Latency.MaxMs, s.Errors, soldOut(s.SoldOutAfterS), float64(s.PeakRSSBytes)/(1<<20), auditWord(s.Audit))
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w, "\n| ratio | goodput | p99 |\n|---|---:|---:|")
		for _, ra := range r.Ratios {
			fmt.Fprintf(w, "| %s | %.2fx | %.2fx |\n", ra.Name, ra.Goodput, ra.P99)
		}
	}
	fmt.Fprintln(w, "\n## Answers\n\n| system | status | code | count |\n|---|---:|---|---:|")
	for _, s := range r.Systems {
		for _, c := range s.Codes {
			fmt.Fprintf(w, "| %s | %d | %s | %d |\n", s.Name, c.Status, c.Code, c.Count)
		}
	}
	for _, s := range r.Systems {
		if s.Audit == nil {
			continue
		}
		a := s.Audit
		fmt.Fprintf(w, "\n## Audit of %s: %s\n\n%d sales, %d tiers, %d orders (statuses %v), %d exported, %d users checked.\n",
			s.Name, auditWord(a), a.Sales, a.Tiers, a.Orders, sortedCounts(a.Statuses), a.Exported, a.Users)
		for _, v := range a.Violations {
			fmt.Fprintf(w, "- **%s**: %s\n", v.Rule, v.Detail)
		}
		for _, wn := range a.Warnings {
			fmt.Fprintf(w, "- warning: %s\n", wn)
		}
	}
	fmt.Fprintln(w, "\nCharts: throughput.png, latency.png, latency-over-time.png, memory.png. Every figure: results.json.")
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
