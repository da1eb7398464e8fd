package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/nats-io/nats.go"

	"github.com/onsale/onsale/engine"
)

// Exchanges into another session (engine/xsession.go) whose two sales
// are in different partitions: the node that takes the request (the old
// order's owner) runs the steps of the other sale on that sale's owner,
// and the sweeper of the new order's owner runs step (b) on the old
// order's. A step travels as a NATS request on the subject of its sale's
// partition (ExchangeSubject), as followers requests do (follows.go),
// rather than through an HTTP route: no client may call a step, and the
// nodes already reach one another's state over NATS, whose connection is
// the fleet's own. Only the partition's owner answers, while its lease is
// valid; a step with no answer (no owner, a takeover) fails with
// engine.ErrStopped after its timeout, and is asked again by the buyer or
// the sweeper: every step is idempotent in its shard.

// ExchangeSubject is the NATS subject of the exchange steps of partition p.
func ExchangeSubject(p int) string { return "onsale.fleet.xsession.p" + strconv.Itoa(p) }

type exchangeRequest struct {
	SaleID string              `json:"sale_id"`
	Step   engine.ExchangeStep `json:"step"`
}

type exchangeReply struct {
	Result engine.ExchangeStepResult `json:"result"`
	// Code and Message: the owner's engine refused the step.
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	Available int    `json:"available,omitempty"` // sold_out
	// Error: the step was not decided, or not known to be.
	Error string `json:"error,omitempty"`
}

// exchangeTimeout bounds a step: one shard decision and its sync.
const exchangeTimeout = 10 * time.Second

// ServeExchanges answers the exchange steps of partition p from eng while
// valid says this node holds p's lease. The subscription ends with nc.
func ServeExchanges(nc *nats.Conn, p int, valid func() bool, eng *engine.Engine) error {
	_, err := nc.Subscribe(ExchangeSubject(p), func(m *nats.Msg) {
		if !valid() {
			return // a deposed owner stays silent; the asker times out and retries
		}
		go answerExchange(m, eng) // a step waits for its shard's sync: never hold the subscription's goroutine
	})
	if err != nil {
		return fmt.Errorf("fleet: cannot serve the exchange steps: %w", err)
	}
	return nil
}

func answerExchange(m *nats.Msg, eng *engine.Engine) {
	var req exchangeRequest
	var rep exchangeReply
	if err := jsonv2.Unmarshal(m.Data, &req); err != nil {
		rep.Error = "bad exchange step: " + err.Error() // not a refusal: a refused step (b) would undo the exchange
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
		res, err := eng.ExchangeStep(ctx, req.SaleID, req.Step)
		cancel()
		var rej *engine.Rejection
		switch {
		case errors.As(err, &rej):
			rep.Code, rep.Message, rep.Available = string(rej.Code), rej.Message, rej.Available
		case err != nil:
			rep.Error = err.Error()
		default:
			rep.Result = res
		}
	}
	b, _ := jsonv2.Marshal(rep)
	_ = m.Respond(b)
}

// Exchanges is engine.Config.Remote on a fleet node: the steps of the
// sales of the partitions it does not hold go over nc.
func (f *Fleet) Exchanges(nc *nats.Conn) engine.ExchangeRemote {
	return &exchanges{Conn: nc, Partitions: f.o.Partitions, f: f}
}

type exchanges struct {
	Conn       *nats.Conn
	Partitions int
	f          *Fleet
}

// Holds is engine.ExchangeRemote.Holds.
func (x *exchanges) Holds(saleID string) bool {
	return int64(PartitionOf([]byte(saleID), x.Partitions)) == x.f.local.Load()
}

// ExchangeStep is engine.ExchangeRemote.ExchangeStep: the step asked of
// the owner of saleID's partition.
func (x *exchanges) ExchangeStep(ctx context.Context, saleID string, s engine.ExchangeStep) (engine.ExchangeStepResult, error) {
	b, err := jsonv2.Marshal(exchangeRequest{SaleID: saleID, Step: s})
	if err != nil {
		return engine.ExchangeStepResult{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, exchangeTimeout)
		defer cancel()
	}
	m, err := x.Conn.RequestWithContext(ctx, ExchangeSubject(PartitionOf([]byte(saleID), x.Partitions)), b)
	if err != nil {
		return engine.ExchangeStepResult{}, fmt.Errorf("%w: fleet: the owner of sale %q's partition did not answer an exchange step: %v",
			engine.ErrStopped, saleID, err)
	}
	var rep exchangeReply
	if err := jsonv2.Unmarshal(m.Data, &rep); err != nil {
		return engine.ExchangeStepResult{}, fmt.Errorf("%w: fleet: bad exchange step reply: %v", engine.ErrStopped, err)
	}
	switch {
	case rep.Code != "":
		return engine.ExchangeStepResult{}, &engine.Rejection{Code: engine.Code(rep.Code), Message: rep.Message, Available: rep.Available}
	case rep.Error != "":
		return engine.ExchangeStepResult{}, fmt.Errorf("%w: fleet: the owner of sale %q's partition: %s", engine.ErrStopped, saleID, rep.Error)
	}
	return rep.Result, nil
}
