package shim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/onsale/onsale/bench/api"
)

// Redis keys (single node; the scripts build some keys themselves, so this
// is not cluster-safe, as flash-sale shims usually are not):
//
//	t:{sale}:{tier}         hash stock avail held sold price
//	u:{sale}:{user}         tickets the user holds in the sale
//	i:{sale}:{user}:{key}   order id of an idempotency key
//	o:{order}               hash sale tier user qty amount currency status expires
//	ol:{sale}               list of the sale's order ids (admin export)
//	e:{event}               processed payment event ids

// purchaseLua checks the idempotency key, the per-user count and the stock,
// then takes the stock and records the order, atomically.
var purchaseLua = redis.NewScript(`
local prev = redis.call('GET', KEYS[3])
if prev then return {'replay', prev} end
local qty = tonumber(ARGV[1])
local t = redis.call('HMGET', KEYS[1], 'avail', 'price')
if not t[1] then return {'unknown_tier'} end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n + qty > tonumber(ARGV[2]) then return {'limit_exceeded'} end
if tonumber(t[1]) < qty then return {'sold_out'} end
local amount = tonumber(t[2]) * qty
redis.call('HINCRBY', KEYS[1], 'avail', -qty)
redis.call('HINCRBY', KEYS[1], 'held', qty)
redis.call('INCRBY', KEYS[2], qty)
redis.call('SET', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[4], 'sale', ARGV[5], 'tier', ARGV[6], 'user', ARGV[4], 'qty', ARGV[1],
  'amount', tostring(amount), 'currency', ARGV[7], 'status', 'pending', 'expires', ARGV[8])
redis.call('RPUSH', KEYS[5], ARGV[3])
return {'ok', tostring(amount)}
`)

// cancelLua releases a pending order's stock and the user's count.
var cancelLua = redis.NewScript(`
local o = redis.call('HMGET', KEYS[1], 'status', 'user', 'sale', 'tier', 'qty')
if not o[1] or o[2] ~= ARGV[1] then return {'not_found'} end
if o[1] == 'pending' then
  local q = tonumber(o[5])
  local tk = 't:' .. o[3] .. ':' .. o[4]
  redis.call('HSET', KEYS[1], 'status', 'cancelled')
  redis.call('HINCRBY', tk, 'avail', q)
  redis.call('HINCRBY', tk, 'held', -q)
  redis.call('INCRBY', 'u:' .. o[3] .. ':' .. o[2], -q)
elseif o[1] ~= 'cancelled' then
  return {'not_pending'}
end
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// payLua applies a payment event once: paid moves held to sold, failed
// releases the stock.
var payLua = redis.NewScript(`
local o = redis.call('HMGET', KEYS[1], 'status', 'user', 'sale', 'tier', 'qty', 'amount', 'currency')
if not o[1] then return {'not_found'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'ok', redis.call('HGETALL', KEYS[1])} end
if o[6] ~= ARGV[1] or o[7] ~= ARGV[2] then return {'payment_mismatch'} end
redis.call('SET', KEYS[2], '1')
if o[1] == 'pending' then
  local q = tonumber(o[5])
  local tk = 't:' .. o[3] .. ':' .. o[4]
  redis.call('HINCRBY', tk, 'held', -q)
  if ARGV[3] == 'payment.succeeded' then
    redis.call('HSET', KEYS[1], 'status', 'paid')
    redis.call('HINCRBY', tk, 'sold', q)
  else
    redis.call('HSET', KEYS[1], 'status', 'cancelled')
    redis.call('HINCRBY', tk, 'avail', q)
    redis.call('INCRBY', 'u:' .. o[3] .. ':' .. o[2], -q)
  end
end
return {'ok', redis.call('HGETALL', KEYS[1])}
`)

// putTierLua creates a tier or changes its stock, refusing a stock below
// held + sold.
var putTierLua = redis.NewScript(`
local t = redis.call('HMGET', KEYS[1], 'held', 'sold')
local held = tonumber(t[1] or '0')
local sold = tonumber(t[2] or '0')
local stock = tonumber(ARGV[1])
if stock < held + sold then return 'stock_below_sold' end
redis.call('HSET', KEYS[1], 'stock', stock, 'avail', stock - held - sold, 'held', held, 'sold', sold, 'price', ARGV[2])
if t[1] then return 'updated' end
return 'created'
`)

type redisStore struct {
	rdb *redis.Client
}

func newRedisStore(ctx context.Context, addr string, conns int) (*redisStore, error) {
	if err := api.CheckLoopback(addr); err != nil {
		return nil, err
	}
	if conns <= 0 {
		conns = 64
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conns, MinIdleConns: conns / 4})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("shim: cannot reach redis at %s: %w", addr, err)
	}
	for _, s := range []*redis.Script{purchaseLua, cancelLua, payLua, putTierLua} {
		if err := s.Load(pctx, rdb).Err(); err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("shim: cannot load script: %w", err)
		}
	}
	return &redisStore{rdb: rdb}, nil
}

func (r *redisStore) close() { _ = r.rdb.Close() }

func tierKey(sale, tier string) string { return "t:" + sale + ":" + tier }

func (r *redisStore) putSale(ctx context.Context, s *api.SaleSpec) (bool, error) {
	created := false
	for _, t := range s.Tiers {
		res, err := putTierLua.Run(ctx, r.rdb, []string{tierKey(s.ID, t.ID)}, t.Stock, t.PriceCents).Text()
		if err != nil {
			return false, fmt.Errorf("cannot put tier: %w", err)
		}
		switch res {
		case "created":
			created = true
		case "stock_below_sold":
			return false, fmt.Errorf("shim: tier %s: stock below held + sold", t.ID)
		}
	}
	return created, nil
}

func (r *redisStore) purchase(ctx context.Context, p *purchase) (api.Order, outcome, error) {
	keys := []string{
		tierKey(p.sale.ID, p.tier),
		"u:" + p.sale.ID + ":" + p.user,
		"i:" + p.sale.ID + ":" + p.user + ":" + p.key,
		"o:" + p.orderID,
		"ol:" + p.sale.ID,
	}
	expires := p.expiresAt.Format(time.RFC3339Nano)
	vals, err := purchaseLua.Run(ctx, r.rdb, keys, p.qty, p.userLimit, p.orderID, p.user, p.sale.ID, p.tier, p.currency, expires).Slice()
	if err != nil {
		return api.Order{}, outcomeOK, err
	}
	switch first := fmt.Sprint(vals[0]); first {
	case "ok":
		amount, _ := strconv.ParseInt(fmt.Sprint(vals[1]), 10, 64)
		return api.Order{
			OrderID: p.orderID, Status: api.StatusPending, SaleID: p.sale.ID, Tier: p.tier, Quantity: p.qty,
			AmountCents: amount, Currency: p.currency, ExpiresAt: p.expiresAt, UserID: p.user,
		}, outcomeOK, nil
	case "replay":
		o, found, err := r.getOrder(ctx, fmt.Sprint(vals[1]))
		if err != nil || !found {
			return o, outcomeOK, errors.Join(err, errors.New("shim: replayed order missing"))
		}
		return o, outcomeReplay, nil
	default:
		return api.Order{}, outcome(first), nil
	}
}

func (r *redisStore) getOrder(ctx context.Context, id string) (api.Order, bool, error) {
	m, err := r.rdb.HGetAll(ctx, "o:"+id).Result()
	if err != nil || len(m) == 0 {
		return api.Order{}, false, err
	}
	return orderFromHash(id, m), true, nil
}

func orderFromHash(id string, m map[string]string) api.Order {
	qty, _ := strconv.Atoi(m["qty"])
	amount, _ := strconv.ParseInt(m["amount"], 10, 64)
	exp, _ := time.Parse(time.RFC3339Nano, m["expires"])
	return api.Order{
		OrderID: id, Status: m["status"], SaleID: m["sale"], Tier: m["tier"], Quantity: qty,
		AmountCents: amount, Currency: m["currency"], ExpiresAt: exp, UserID: m["user"],
	}
}

// orderFromReply decodes {'ok', HGETALL} from a script.
func orderFromReply(id string, vals []any) (api.Order, outcome) {
	if fmt.Sprint(vals[0]) != "ok" {
		return api.Order{}, outcome(fmt.Sprint(vals[0]))
	}
	flat, _ := vals[1].([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		m[fmt.Sprint(flat[i])] = fmt.Sprint(flat[i+1])
	}
	return orderFromHash(id, m), outcomeOK
}

func (r *redisStore) cancel(ctx context.Context, id, user string) (api.Order, outcome, error) {
	vals, err := cancelLua.Run(ctx, r.rdb, []string{"o:" + id}, user).Slice()
	if err != nil {
		return api.Order{}, outcomeOK, err
	}
	o, out := orderFromReply(id, vals)
	return o, out, nil
}

func (r *redisStore) pay(ctx context.Context, ev *api.PaymentEvent) (api.Order, outcome, error) {
	vals, err := payLua.Run(ctx, r.rdb, []string{"o:" + ev.OrderID, "e:" + ev.ID},
		strconv.FormatInt(ev.AmountCents, 10), ev.Currency, ev.Type).Slice()
	if err != nil {
		return api.Order{}, outcomeOK, err
	}
	o, out := orderFromReply(ev.OrderID, vals)
	return o, out, nil
}

func (r *redisStore) tiers(ctx context.Context, s *api.SaleSpec) ([]api.TierView, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(s.Tiers))
	for i, t := range s.Tiers {
		cmds[i] = pipe.HMGet(ctx, tierKey(s.ID, t.ID), "stock", "avail", "held", "sold")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([]api.TierView, len(s.Tiers))
	for i, t := range s.Tiers {
		v := cmds[i].Val()
		n := func(j int) int { x, _ := strconv.Atoi(fmt.Sprint(v[j])); return x }
		out[i] = api.TierView{ID: t.ID, Name: t.Name, PriceCents: t.PriceCents, Stock: n(0), Available: n(1), Held: n(2), Sold: n(3)}
	}
	return out, nil
}

func (r *redisStore) export(ctx context.Context, sale, cursor string, limit int) ([]api.Order, string, error) {
	start, _ := strconv.ParseInt(cursor, 10, 64)
	ids, err := r.rdb.LRange(ctx, "ol:"+sale, start, start+int64(limit)-1).Result()
	if err != nil || len(ids) == 0 {
		return nil, "", err
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, "o:"+id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, "", err
	}
	orders := make([]api.Order, len(ids))
	for i, id := range ids {
		orders[i] = orderFromHash(id, cmds[i].Val())
	}
	next := ""
	if len(ids) == limit {
		next = strconv.FormatInt(start+int64(limit), 10)
	}
	return orders, next, nil
}
