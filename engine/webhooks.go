package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
)

// Webhook endpoints: where notifications (outbox.go) are delivered. They
// are state like credentials: created and deleted by logged events, decided
// by the one shard that owns the system key webhooksKey, kept in its
// snapshot (section webhooksSectionTag) and moved with that key when the
// shard count changes. The engine holds the endpoint's signing secret only
// sealed by the caller (httpapi seals it with a key derived from the data
// key), so the log and snapshots hold no secret in clear.
//
// Deleting an endpoint removes it; its undelivered notifications are
// dropped by the deliverer, which sees the deletion in the log.

// webhooksKey routes webhook commands: not a valid sale id, so no sale
// shares its shard by name.
const webhooksKey = "~webhooks"

// Limits of webhook endpoints.
const (
	WebhooksMax         = 32
	WebhookEventsMax    = 16
	WebhookURLLenMax    = 2048
	WebhookIDLenMax     = 32
	WebhookSecretLenMax = 256 // sealed
	webhooksSectionTag  = 80
)

// CodeUnknownWebhook: no webhook endpoint has this id.
const CodeUnknownWebhook Code = "unknown_webhook"

// Webhook is a registered endpoint.
type Webhook struct {
	ID           string
	URL          string
	Events       []string // kinds delivered (NotificationKinds); empty: all
	SecretSealed []byte
	CreatedAtMs  int64
}

// Wants reports whether the endpoint takes notifications of kind.
func (w *Webhook) Wants(kind string) bool {
	return len(w.Events) == 0 || slices.Contains(w.Events, kind)
}

// webhookState is the owning shard's endpoints, in creation order.
type webhookState struct {
	list []Webhook
}

func (ws *webhookState) find(id string) int {
	return slices.IndexFunc(ws.list, func(w Webhook) bool { return w.ID == id })
}

// CreateWebhook stores an endpoint; the caller draws its id and seals its
// secret. CreatedAtMs is the engine's.
func (e *Engine) CreateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	if rej := validateWebhook(&w); rej != nil {
		return Webhook{}, rej
	}
	var out []Webhook
	err := e.one(ctx, webhooksKey, command{kind: cmdPutWebhook, hook: &w}, func(r *result) { out = r.hooks })
	if err != nil {
		return Webhook{}, err
	}
	return out[0], nil
}

// DeleteWebhook removes an endpoint and returns it.
func (e *Engine) DeleteWebhook(ctx context.Context, id string) (Webhook, error) {
	var out []Webhook
	err := e.one(ctx, webhooksKey, command{kind: cmdDeleteWebhook, key: id}, func(r *result) { out = r.hooks })
	if err != nil {
		return Webhook{}, err
	}
	return out[0], nil
}

// Webhooks returns every endpoint, in creation order.
func (e *Engine) Webhooks(ctx context.Context) ([]Webhook, error) {
	var out []Webhook
	err := e.one(ctx, webhooksKey, command{kind: cmdWebhooks}, func(r *result) { out = r.hooks })
	return out, err
}

func validateWebhook(w *Webhook) *Rejection {
	switch {
	case len(w.ID) == 0 || len(w.ID) > WebhookIDLenMax:
		return reject(CodeInvalidRequest, "webhook id must have 1 to %d bytes", WebhookIDLenMax)
	case len(w.URL) == 0 || len(w.URL) > WebhookURLLenMax:
		return reject(CodeInvalidRequest, "url must have 1 to %d bytes", WebhookURLLenMax)
	case len(w.SecretSealed) == 0 || len(w.SecretSealed) > WebhookSecretLenMax:
		return reject(CodeInvalidRequest, "the sealed secret must have 1 to %d bytes", WebhookSecretLenMax)
	case len(w.Events) > WebhookEventsMax:
		return reject(CodeInvalidRequest, "events lists at most %d kinds", WebhookEventsMax)
	}
	for i, k := range w.Events {
		if !slices.Contains(NotificationKinds, k) {
			return reject(CodeInvalidRequest, "events[%d]: %q is not a notification kind", i, k)
		}
		if slices.Contains(w.Events[:i], k) {
			return reject(CodeInvalidRequest, "events[%d]: %q appears twice", i, k)
		}
	}
	return nil
}

func (st *state) decideWebhook(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	switch cmd.kind {
	case cmdPutWebhook:
		if st.hooks.find(cmd.hook.ID) >= 0 {
			return evs, reject(CodeInvalidRequest, "webhook id %q is taken", cmd.hook.ID)
		}
		if len(st.hooks.list) >= WebhooksMax {
			return evs, reject(CodeInvalidRequest, "at most %d webhook endpoints; delete one first", WebhooksMax)
		}
		w := *cmd.hook
		w.CreatedAtMs = now
		w.Events = slices.Clone(w.Events)
		w.SecretSealed = slices.Clone(w.SecretSealed)
		return append(evs, event{kind: evWebhookPut, at: now, hook: &w}), nil
	case cmdDeleteWebhook:
		i := st.hooks.find(cmd.key)
		if i < 0 {
			return evs, reject(CodeUnknownWebhook, "no webhook endpoint %q", cmd.key)
		}
		res.hooks = []Webhook{st.hooks.list[i]}
		return append(evs, event{kind: evWebhookDeleted, at: now, hook: &Webhook{ID: cmd.key}}), nil
	}
	return evs, nil
}

func (st *state) applyWebhook(ev *event) error {
	i := st.hooks.find(ev.hook.ID)
	switch ev.kind {
	case evWebhookPut:
		if i >= 0 {
			return fmt.Errorf("%w: webhook %q created twice", errCorrupt, ev.hook.ID)
		}
		w := *ev.hook
		w.Events, w.SecretSealed = slices.Clone(w.Events), slices.Clone(w.SecretSealed)
		st.hooks.list = append(st.hooks.list, w)
	case evWebhookDeleted:
		if i < 0 {
			return fmt.Errorf("%w: deletion of unknown webhook %q", errCorrupt, ev.hook.ID)
		}
		st.hooks.list = slices.Delete(st.hooks.list, i, i+1)
	}
	return nil
}

func (st *state) answerWebhook(cmd *command, res *result) {
	switch cmd.kind {
	case cmdPutWebhook:
		res.hooks = []Webhook{st.hooks.list[st.hooks.find(cmd.hook.ID)]}
	case cmdWebhooks:
		res.hooks = slices.Clone(st.hooks.list) // the elements' slices are never written in place
	} // cmdDeleteWebhook: decide set the endpoint it deletes
}

// Event bodies:
//
//	WebhookPut     at id url nevents {kind} secretSealed
//	WebhookDeleted at id
func appendWebhookEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.hook.ID)
	if ev.kind == evWebhookDeleted {
		return b
	}
	return appendWebhookFields(b, ev.hook)
}

func appendWebhookFields(b []byte, w *Webhook) []byte {
	b = appendString(b, w.URL)
	b = binary.AppendUvarint(b, uint64(len(w.Events)))
	for _, k := range w.Events {
		b = appendString(b, k)
	}
	return appendString(b, string(w.SecretSealed))
}

func decodeWebhookEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	ev.hook = &Webhook{ID: d.str(WebhookIDLenMax), CreatedAtMs: ev.at}
	if ev.kind == evWebhookPut {
		d.webhookFields(ev.hook)
	}
}

func (d *decoder) webhookFields(w *Webhook) {
	w.URL = d.str(WebhookURLLenMax)
	n := d.uvarint(WebhookEventsMax)
	for range n {
		w.Events = append(w.Events, d.str(64))
	}
	w.SecretSealed = []byte(d.str(WebhookSecretLenMax))
}

// The webhooks' snapshot section: every endpoint, in creation order.
//
//	n | {id createdAt fields as in WebhookPut}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag: webhooksSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			if len(st.hooks.list) == 0 {
				return nil
			}
			list := slices.Clone(st.hooks.list)
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(list)))
				for i := range list {
					b = appendString(b, list[i].ID)
					b = binary.AppendVarint(b, list[i].CreatedAtMs)
					b = appendWebhookFields(b, &list[i])
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(WebhooksMax)
			for range n {
				w := Webhook{ID: d.str(WebhookIDLenMax), CreatedAtMs: d.varint()}
				d.webhookFields(&w)
				if d.err != nil {
					break
				}
				if st.hooks.find(w.ID) >= 0 {
					return fmt.Errorf("%w: snapshot holds webhook %q twice", errCorrupt, w.ID)
				}
				st.hooks.list = append(st.hooks.list, w)
			}
			if err := d.check("webhooks section"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: webhooks section: %d bytes left over", errCorrupt, len(d.b))
			}
			return nil
		},
	})
}

// moveWebhooks gathers the endpoints of the old shards into the shard that
// owns webhooksKey under the new count (repartition).
func moveWebhooks(old, states []*state) {
	dst := states[shardIndex(webhooksKey, len(states))]
	for _, st := range old {
		for _, w := range st.hooks.list {
			if dst.hooks.find(w.ID) >= 0 {
				panic(newInvariantError("webhook %q on two shards", w.ID))
			}
			dst.hooks.list = append(dst.hooks.list, w)
		}
	}
}

// WebhooksShard is the shard whose log holds the endpoints' changes.
func (e *Engine) WebhooksShard() int { return shardIndex(webhooksKey, len(e.shards)) }
