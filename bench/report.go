package bench

import (
	"fmt"
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
	OnsaleFlags []string       `json:"onsale_flags,omitempty"` // -onsale-flags: a run with -gomaxprocs 1 is not a default run
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
	Name             string          `json:"name"`
	Skipped          string          `json:"skipped,omitempty"`
	Error            string          `json:"error,omitempty"`
	StopError        string          `json:"stop_error,omitempty"`
	StoppedBy        string          `json:"stopped_by,omitempty"`
	ElapsedS         float64         `json:"elapsed_s"`
	Requests         int64           `json:"requests"`
	RequestsPerSec   float64         `json:"requests_per_sec"`
	GoodputPerSec    float64         `json:"goodput_per_sec"`   // definitive business answers per second
	Purchases        int64           `json:"purchases"`         // 2xx purchase answers (new and replays)
	Created          int64           `json:"purchases_created"` // 201 purchase answers: new durable orders
	PurchasesPerSec  float64         `json:"purchases_per_sec"` // new orders (201) per second
	Rejected         int64           `json:"rejections"`        // business refusals (409 sold_out, ...)
	RejectionsPerSec float64         `json:"rejections_per_sec"`
	Admitted         int64           `json:"check_ins,omitempty"`         // door: 2xx check-ins, tickets let in
	AdmittedPerSec   float64         `json:"check_ins_per_sec,omitempty"` // door: tickets let in per second
	Errors           int64           `json:"errors"`
	ErrorsPerSec     float64         `json:"errors_per_sec"`
	ErrorRate        float64         `json:"error_rate"`
	PurchaseAnswers  PurchaseAnswers `json:"purchase_answers"`
	// Open loop: requests per second achieved over the rate asked.
	AchievedShare   float64                `json:"achieved_share_of_rate,omitempty"`
	CPU             *CPUCost               `json:"cpu,omitempty"`
	Stages          []StageStats           `json:"stages,omitempty"` // server-side latency by stage, when the server exposes it
	StagesNote      string                 `json:"stages_note,omitempty"`
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
	// A fleet run (Config.Fleet): what was in front, and each node's
	// purchases created per second in the measured phase (fleet.go).
	FleetFront string            `json:"fleet_front,omitempty"`
	Fleet      []FleetNodeResult `json:"fleet_nodes,omitempty"`
}

// PurchaseAnswers splits the measured purchase requests by answer.
type PurchaseAnswers struct {
	Sent     int64 `json:"sent"`
	Created  int64 `json:"created"`  // 201: a new order
	Replayed int64 `json:"replayed"` // 200: a resent key's existing order
	Other    int64 `json:"other"`    // refusals, errors, no answer
}

// CPUCost is the CPU time of the measured phase (from its start to the
// last answer), from /proc for the server's processes and from getrusage
// for the generator (the harness process, shims excluded).
type CPUCost struct {
	WallS               float64 `json:"wall_s"`
	ServerCPUS          float64 `json:"server_cpu_s,omitempty"`
	ServerCores         float64 `json:"server_cores,omitempty"`
	ServerUsPerRequest  float64 `json:"server_us_per_request,omitempty"`
	ServerUsPerPurchase float64 `json:"server_us_per_purchase,omitempty"` // per new order (201)
	// ServerSwitchesPerRequest is how often the server's threads left a
	// core (context switches, voluntary or not) per request answered.
	ServerSwitchesPerRequest float64 `json:"server_switches_per_request,omitempty"`
	GeneratorCPUS            float64 `json:"generator_cpu_s"`
	GeneratorCores           float64 `json:"generator_cores"`
	GeneratorUsPerRequest    float64 `json:"generator_us_per_request,omitempty"`
}

// Sample is one interval of a run.
type Sample struct {
	AtS              float64 `json:"at_s"`
	RequestsPerSec   float64 `json:"requests_per_sec"`
	GoodputPerSec    float64 `json:"goodput_per_sec"`
	PurchasesPerSec  float64 `json:"purchases_per_sec"` // new orders (201)
	RejectionsPerSec float64 `json:"rejections_per_sec"`
	AdmittedPerSec   float64 `json:"check_ins_per_sec,omitempty"` // door: tickets let in
	ErrorsPerSec     float64 `json:"errors_per_sec"`
	P50Ms            float64 `json:"p50_ms"`
	P99Ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	ServerCores      float64 `json:"server_cores"`
	GeneratorCores   float64 `json:"generator_cores"`
	RSSBytes         int64   `json:"rss_bytes"`
	DiskBytes        int64   `json:"disk_bytes"`
}

// Ratio compares onsale with another system.
type Ratio struct {
	Name      string  `json:"name"` // "onsale / ceiling"
	Goodput   float64 `json:"goodput"`
	Purchases float64 `json:"purchases,omitempty"` // new orders per second, when both made some
	P99       float64 `json:"p99"`
}

func newReport(cfg *Config, started time.Time) *Report {
	r := &Report{
		Scenario: cfg.Scenario, Started: started.UTC(), Machine: thisMachine(),
		LoadModel: describeLoad(&cfg.Load), OnsaleFlags: cfg.OnsaleFlags,
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
	switch cfg.Scenario {
	case ScenarioFlash:
		r.Workload = cfg.Flash
	case ScenarioSustained:
		r.Workload = cfg.Sustained
	case ScenarioDoor:
		r.Workload = cfg.Door
	case ScenarioBrowse:
		r.Workload = cfg.Browse
	case ScenarioQueue:
		r.Workload = cfg.Queue
	default:
		r.Workload = cfg.Steady
	}
	return r
}

func (r *SystemResult) fill(t Totals, st LoadStats) {
	r.StoppedBy = st.StoppedBy
	r.ElapsedS = st.Elapsed.Seconds()
	r.Requests, r.Purchases, r.Errors, r.LateSends = t.Requests, t.Purchases, t.Errors, t.LateSends
	r.Created, r.Rejected, r.Admitted = t.Created, t.Rejected, t.Admitted
	if r.ElapsedS > 0 {
		r.RequestsPerSec = float64(t.Requests) / r.ElapsedS
		r.GoodputPerSec = float64(t.Business) / r.ElapsedS
		r.PurchasesPerSec = float64(t.Created) / r.ElapsedS
		r.RejectionsPerSec = float64(t.Rejected) / r.ElapsedS
		r.AdmittedPerSec = float64(t.Admitted) / r.ElapsedS
		r.ErrorsPerSec = float64(t.Errors) / r.ElapsedS
	}
	sent := t.ByOp[OpPurchase.String()].TotalCount()
	r.PurchaseAnswers = PurchaseAnswers{Sent: sent, Created: t.Created, Replayed: t.Purchases - t.Created, Other: sent - t.Purchases}
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

// measuredPhase adds what the measured phase cost and, in an open loop,
// how much of the asked rate it achieved.
func (r *SystemResult) measuredPhase(pc phaseCost, ratePerSec float64) {
	if ratePerSec > 0 {
		r.AchievedShare = r.RequestsPerSec / ratePerSec
	}
	r.Stages, r.StagesNote = pc.stages, pc.stagesNote
	wall := pc.end.at.Sub(pc.start.at).Seconds()
	if pc.start.at.IsZero() || wall <= 0 {
		return
	}
	c := &CPUCost{WallS: wall}
	gen := (pc.end.generator - pc.start.generator).Seconds()
	c.GeneratorCPUS, c.GeneratorCores = gen, gen/wall
	if r.Requests > 0 {
		c.GeneratorUsPerRequest = gen / float64(r.Requests) * 1e6
	}
	if pc.serverKnown {
		srv := (pc.end.server - pc.start.server).Seconds()
		c.ServerCPUS, c.ServerCores = srv, srv/wall
		if r.Requests > 0 {
			c.ServerUsPerRequest = srv / float64(r.Requests) * 1e6
		}
		if r.Created > 0 {
			c.ServerUsPerPurchase = srv / float64(r.Created) * 1e6
		}
		if sw := pc.end.switches - pc.start.switches; sw > 0 && r.Requests > 0 {
			c.ServerSwitchesPerRequest = float64(sw) / float64(r.Requests)
		}
	}
	r.CPU = c
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
		if on.PurchasesPerSec > 0 && o.PurchasesPerSec > 0 {
			ratio.Purchases = on.PurchasesPerSec / o.PurchasesPerSec
		}
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
