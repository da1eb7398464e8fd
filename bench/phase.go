package bench

import (
	"fmt"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// phaseMeter reads what the measured phase cost, at its start and at its
// end: the CPU time of the server's processes and of the generator, and
// the server's stage histograms when it has them.
type phaseMeter struct {
	usage    func() treeUsage       // nil when the server's processes are unknown
	switches func() int64           // ditto
	scrape   func() ([]byte, error) // GET /metrics; nil when the server has none
	started  chan struct{}          // closed once the start readings are taken
	quit     chan struct{}          // closed by finish
	start    cpuReading             // written before started is closed
	before   stageScrape            // ditto
	note     string                 // ditto: why there are no stages
	readCPU  func(time.Time) cpuReading
}

// phaseCost is what a phaseMeter measured.
type phaseCost struct {
	start, end  cpuReading
	serverKnown bool
	stages      []StageStats
	stagesNote  string // why the stages are missing, when the server should have them
}

// newPhaseMeter takes the start readings at measureStart, on its own
// goroutine; finish takes the end readings.
func newPhaseMeter(measureStart time.Time, usage func() treeUsage, switches func() int64, scrape func() ([]byte, error)) *phaseMeter {
	m := &phaseMeter{usage: usage, switches: switches, scrape: scrape, started: make(chan struct{}), quit: make(chan struct{})}
	m.readCPU = func(at time.Time) cpuReading {
		r := cpuReading{at: at, generator: selfCPU()}
		if m.usage != nil {
			r.server = m.usage().cpu
		}
		if m.switches != nil {
			r.switches = m.switches()
		}
		return r
	}
	go func() {
		defer close(m.started)
		t := time.NewTimer(time.Until(measureStart))
		defer t.Stop()
		select {
		case <-m.quit: // cancelled during the warm-up
			m.note = "the run ended before the measurement started"
			return
		case <-t.C:
		}
		m.before, m.note = m.scrapeStages()
		m.start = m.readCPU(time.Now())
	}()
	return m
}

func (m *phaseMeter) scrapeStages() (stageScrape, string) {
	if m.scrape == nil {
		return nil, ""
	}
	body, err := m.scrape()
	if err != nil {
		return nil, "cannot scrape /metrics: " + err.Error()
	}
	s, err := parseStages(body)
	if err != nil {
		return nil, err.Error()
	}
	return s, ""
}

// finish takes the end readings; call it once the load has stopped.
func (m *phaseMeter) finish() phaseCost {
	end := m.readCPU(time.Now())
	close(m.quit)
	<-m.started
	pc := phaseCost{start: m.start, end: end, serverKnown: m.usage != nil, stagesNote: m.note}
	if m.start.at.IsZero() {
		return pc
	}
	if m.before != nil {
		after, note := m.scrapeStages()
		if note != "" {
			pc.stagesNote = note
		} else {
			pc.stages = diffStages(m.before, after)
		}
	}
	return pc
}

// scraperOf is how to read a system's /metrics: onsale's only (the shims
// have none).
func scraperOf(sys System, c *api.Client) func() ([]byte, error) {
	switch sys.(type) {
	case *onsaleSystem, *externalSystem:
	default:
		return nil
	}
	return func() ([]byte, error) {
		body, status, err := c.Get("/metrics")
		if err != nil {
			return nil, err
		}
		if status != 200 {
			return nil, fmt.Errorf("GET /metrics answered %d", status)
		}
		return body, nil
	}
}
