package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// table is one section of the report, drawn as aligned text for the
// terminal or as Markdown for summary.md. The first textCols columns (at
// least one) are text, left-aligned; the others are figures, right-aligned.
type table struct {
	title    string
	head     []string
	rows     [][]string
	textCols int
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) text(w io.Writer) {
	if len(t.rows) == 0 {
		return
	}
	width := make([]int, len(t.head))
	for i, h := range t.head {
		width[i] = len([]rune(h))
	}
	for _, r := range t.rows {
		for i, c := range r {
			if len(r) < len(t.head) && i > 0 {
				break // a short row is a name and a note: it sets no widths
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		if len(cells) < len(t.head) {
			fmt.Fprintln(w, cells[0]+strings.Repeat(" ", width[0]-len([]rune(cells[0])))+"  "+strings.Join(cells[1:], " "))
			return
		}
		var b strings.Builder
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			case i < t.textCols:
				b.WriteString("  " + c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	fmt.Fprintf(w, "\n%s\n", t.title)
	line(t.head)
	for _, r := range t.rows {
		line(r)
	}
}

func (t *table) markdown(w io.Writer) {
	if len(t.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## %s\n\n| %s |\n|---|", t.title, strings.Join(t.head, " | "))
	text := max(t.textCols, 1)
	fmt.Fprintln(w, strings.Repeat("---|", text-1)+strings.Repeat("---:|", len(t.head)-text))
	for _, r := range t.rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = strings.ReplaceAll(c, "|", "/")
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// sections are the report's tables, in the order they are shown.
func (r *Report) sections(markdown bool) []*table {
	door := r.Scenario == ScenarioDoor
	made := "purchases/s"
	if door {
		made = "check-ins/s"
	}
	main := &table{title: "Results", head: []string{"system", "req/s", made, "rejected/s", "errors/s",
		"p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "sold out", "audit"}}
	// A system that did not run has its reason in the second column.
	if markdown {
		main.head = slices.Insert(main.head, len(main.head)-1, "peak RSS MiB")
	}
	ops := &table{title: "Latency by operation", head: []string{"system", "operation", "count", "per s", "p50 ms", "p99 ms", "p99.9 ms"}, textCols: 2}
	answers := &table{title: "Purchase answers", head: []string{"system", "sent", "201 new order", "200 replay", "other"}}
	cpu := &table{title: "CPU of the measured phase", head: []string{"system", "server cores", "server µs/request",
		"server µs/purchase", "server switches/request", "generator cores", "generator µs/request"}}
	open := &table{title: fmt.Sprintf("Open loop: %.0f requests/s asked", r.Load.RatePerSec), head: []string{"system",
		"achieved/s", "of asked", "late sends", "max send lag ms", "p99 from send ms"}}
	var stages []*table
	for i := range r.Systems {
		s := &r.Systems[i]
		if !s.measured() {
			why := s.Skipped
			if why == "" {
				why = s.Error
			}
			if why == "" {
				why = "no requests measured"
			}
			main.add(s.Name, oneLine(why))
			continue
		}
		madePerSec := s.PurchasesPerSec
		if door {
			madePerSec = s.AdmittedPerSec
		}
		row := []string{s.Name, f0(s.RequestsPerSec), f0(madePerSec), f0(s.RejectionsPerSec), f0(s.ErrorsPerSec),
			f2(s.Latency.P50Ms), f2(s.Latency.P90Ms), f2(s.Latency.P99Ms), f2(s.Latency.P999Ms), f2(s.Latency.MaxMs),
			soldOut(s.SoldOutAfterS), auditWord(s.Audit)}
		if markdown {
			row = slices.Insert(row, len(row)-1, f0(float64(s.PeakRSSBytes)/(1<<20)))
		}
		main.add(row...)
		for k := OpKind(0); k < opKinds; k++ {
			p, ok := s.LatencyByOp[k.String()]
			if !ok {
				continue
			}
			ops.add(s.Name, k.String(), fmt.Sprint(p.Count), f0(float64(p.Count)/max(s.ElapsedS, 1e-9)), f2(p.P50Ms), f2(p.P99Ms), f2(p.P999Ms))
		}
		if pa := s.PurchaseAnswers; pa.Sent > 0 {
			answers.add(s.Name, fmt.Sprint(pa.Sent), fmt.Sprint(pa.Created), fmt.Sprint(pa.Replayed), fmt.Sprint(pa.Other))
		}
		if c := s.CPU; c != nil {
			srv := []string{"-", "-", "-", "-"}
			if c.ServerCPUS > 0 {
				srv = []string{f2(c.ServerCores), f1(c.ServerUsPerRequest), "-", "-"}
				if c.ServerUsPerPurchase > 0 {
					srv[2] = f1(c.ServerUsPerPurchase)
				}
				if c.ServerSwitchesPerRequest > 0 {
					srv[3] = f2(c.ServerSwitchesPerRequest)
				}
			}
			cpu.add(append(append([]string{s.Name}, srv...), f2(c.GeneratorCores), f1(c.GeneratorUsPerRequest))...)
		}
		if r.Load.RatePerSec > 0 {
			p99 := "-"
			if s.SentBusiness != nil {
				p99 = f2(s.SentBusiness.P99Ms)
			}
			open.add(s.Name, f0(s.RequestsPerSec), fmt.Sprintf("%.1f %%", 100*s.AchievedShare), fmt.Sprint(s.LateSends), f2(s.MaxSendLagMs), p99)
		}
		if len(s.Stages) > 0 || s.StagesNote != "" {
			st := &table{title: s.Name + ": server-side latency by stage (from its /metrics)", head: []string{"stage", "count", "mean µs", "p50 µs", "p99 µs"}}
			for _, g := range s.Stages {
				st.add(g.Stage, fmt.Sprint(g.Count), f1(g.MeanUs), f1(g.P50Us), f1(g.P99Us))
			}
			if s.StagesNote != "" {
				st.add("("+s.StagesNote+")", "", "", "", "")
			}
			stages = append(stages, st)
		}
	}
	ratios := &table{title: "Ratios", head: []string{"ratio", "goodput", "purchases/s", "p99"}}
	for _, ra := range r.Ratios {
		pur := "-"
		if ra.Purchases > 0 {
			pur = fmt.Sprintf("x%.2f", ra.Purchases)
		}
		ratios.add(ra.Name, fmt.Sprintf("x%.2f", ra.Goodput), pur, fmt.Sprintf("x%.2f", ra.P99))
	}
	out := []*table{main, ratios, ops, answers, cpu}
	if r.Load.RatePerSec > 0 {
		out = append(out, open)
	}
	return append(out, stages...)
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

// Table writes the terminal report.
func (r *Report) Table(w io.Writer) {
	fmt.Fprintf(w, "\nscenario %s, %s\n", r.Scenario, r.LoadModel)
	if len(r.OnsaleFlags) > 0 {
		fmt.Fprintf(w, "onsale ran with %s\n", strings.Join(r.OnsaleFlags, " "))
	}
	if r.Scenario == ScenarioDoor {
		fmt.Fprintln(w, doorLegend)
	} else {
		fmt.Fprintln(w, "purchases/s: new orders (201), each durable before its answer; rejected/s: business refusals (409 sold_out, ...)")
	}
	for _, t := range r.sections(false) {
		t.text(w)
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
	for _, s := range r.Systems {
		if len(s.Fleet) > 0 {
			fmt.Fprintf(w, "\n%s", fleetLines(&s))
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

// Markdown writes the summary.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "# onsale bench: %s\n\n", r.Scenario)
	fmt.Fprintf(w, "%s, %s/%s, %d CPUs, %s. Load: %s.\n\n", r.Started.Format(time.RFC3339), r.Machine.GOOS,
		r.Machine.GOARCH, r.Machine.CPUs, r.Machine.GoVersion, r.LoadModel)
	if len(r.OnsaleFlags) > 0 {
		fmt.Fprintf(w, "onsale ran with `%s`.\n\n", strings.Join(r.OnsaleFlags, " "))
	}
	if r.Scenario == ScenarioDoor {
		fmt.Fprintln(w, doorLegend)
	} else {
		fmt.Fprintln(w, "purchases/s counts new orders (201), each durable before its answer; rejected/s counts business refusals (409 sold_out, limit_exceeded, ...), which write nothing.")
	}
	for _, t := range r.sections(true) {
		t.markdown(w)
	}
	for _, s := range r.Systems {
		if len(s.Fleet) > 0 {
			fmt.Fprintf(w, "\n## Fleet\n\n```\n%s```\n", fleetLines(&s))
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
	fmt.Fprintln(w, "\nCharts: throughput.png, purchases.png, latency.png, latency-over-time.png, cpu.png, memory.png. Every figure: results.json.")
}

// doorLegend explains the door scenario's figures.
const doorLegend = "check-ins/s: tickets admitted (200), each durable before its answer; rejected/s: repeat scans refused (409 already_checked_in), which write nothing."

// fleetLines is a fleet run's purchases per node (fleet.go).
func fleetLines(s *SystemResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s fleet (%s in front): %.0f purchases/s in total; created per node:", s.Name, s.FleetFront, s.PurchasesPerSec)
	for _, n := range s.Fleet {
		role := fmt.Sprintf("partition %d", n.Partition)
		if n.Partition < 0 {
			role = "standby"
		}
		if n.PurchasesPerSec < 0 {
			fmt.Fprintf(&b, "\n  %s %s (%s): no /metrics", n.Node, n.Addr, role)
			continue
		}
		fmt.Fprintf(&b, "\n  %s %s (%s): %.0f purchases/s", n.Node, n.Addr, role, n.PurchasesPerSec)
	}
	b.WriteByte('\n')
	return b.String()
}
