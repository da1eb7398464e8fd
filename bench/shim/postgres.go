package shim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/onsale/onsale/bench/api"
)

// postgresSchema is the classic design: stock is a column of the tier row,
// taken with a conditional UPDATE; orders are rows. tiers.stock is what is
// left to sell; total, held and sold are kept beside it for the public
// view.
const postgresSchema = `
CREATE TABLE IF NOT EXISTS tiers (
  id text PRIMARY KEY, sale_id text NOT NULL, tier text NOT NULL, pos int NOT NULL,
  name text NOT NULL, price_cents bigint NOT NULL,
  total int NOT NULL, stock int NOT NULL, held int NOT NULL DEFAULT 0, sold int NOT NULL DEFAULT 0,
  CHECK (stock >= 0));
CREATE TABLE IF NOT EXISTS user_counts (
  sale_id text NOT NULL, user_id text NOT NULL, n int NOT NULL, PRIMARY KEY (sale_id, user_id));
CREATE TABLE IF NOT EXISTS orders (
  id text PRIMARY KEY, sale_id text NOT NULL, tier text NOT NULL, user_id text NOT NULL,
  idem_key text NOT NULL, quantity int NOT NULL, amount_cents bigint NOT NULL, currency text NOT NULL,
  status text NOT NULL, expires_at timestamptz NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (sale_id, user_id, idem_key));
CREATE INDEX IF NOT EXISTS orders_sale ON orders (sale_id, id);
CREATE TABLE IF NOT EXISTS payment_events (id text PRIMARY KEY);
`

const orderColumns = `id, sale_id, tier, user_id, quantity, amount_cents, currency, status, expires_at`

type postgresStore struct {
	pool *pgxpool.Pool
}

func newPostgresStore(ctx context.Context, dsn string, conns int) (*postgresStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("shim: bad postgres dsn: %w", err)
	}
	if err := api.CheckLoopback(fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)); err != nil {
		return nil, err
	}
	if conns <= 0 {
		conns = 32
	}
	cfg.MaxConns = int32(conns)
	cfg.MinConns = int32(conns)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("shim: cannot connect to postgres: %w", err)
	}
	if _, err := pool.Exec(cctx, postgresSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("shim: cannot create schema: %w", err)
	}
	return &postgresStore{pool: pool}, nil
}

func (p *postgresStore) close() { p.pool.Close() }

func (p *postgresStore) putSale(ctx context.Context, s *api.SaleSpec) (bool, error) {
	created := false
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		for i, t := range s.Tiers {
			var inserted bool
			err := tx.QueryRow(ctx, `
INSERT INTO tiers (id, sale_id, tier, pos, name, price_cents, total, stock) VALUES ($1,$2,$3,$4,$5,$6,$7,$7)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents,
  total = EXCLUDED.total, stock = EXCLUDED.total - tiers.held - tiers.sold
RETURNING xmax = 0`, s.ID+"/"+t.ID, s.ID, t.ID, i, t.Name, t.PriceCents, t.Stock).Scan(&inserted)
			if err != nil {
				return fmt.Errorf("cannot put tier %s: %w", t.ID, err)
			}
			created = created || inserted
		}
		return nil
	})
	return created, err
}

func scanOrder(row pgx.Row) (api.Order, error) {
	var o api.Order
	err := row.Scan(&o.OrderID, &o.SaleID, &o.Tier, &o.UserID, &o.Quantity, &o.AmountCents, &o.Currency, &o.Status, &o.ExpiresAt)
	o.ExpiresAt = o.ExpiresAt.UTC()
	return o, err
}

// purchase is one transaction: the idempotency lookup, the per-user count,
// the conditional stock UPDATE on the tier row and the order INSERT.
func (p *postgresStore) purchase(ctx context.Context, pr *purchase) (api.Order, outcome, error) {
	o, out, err := p.tryPurchase(ctx, pr)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // the same key raced in: it won
		o, err = scanOrder(p.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id=$1 AND user_id=$2 AND idem_key=$3`,
			pr.sale.ID, pr.user, pr.key))
		return o, outcomeReplay, err
	}
	return o, out, err
}

func (p *postgresStore) tryPurchase(ctx context.Context, pr *purchase) (api.Order, outcome, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return api.Order{}, outcomeOK, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	o, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id=$1 AND user_id=$2 AND idem_key=$3`,
		pr.sale.ID, pr.user, pr.key))
	switch {
	case err == nil:
		return o, outcomeReplay, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return o, outcomeOK, err
	}
	if pr.qty > pr.userLimit {
		return api.Order{}, api.CodeLimitExceeded, nil
	}
	var n int
	err = tx.QueryRow(ctx, `
INSERT INTO user_counts (sale_id, user_id, n) VALUES ($1, $2, $3)
ON CONFLICT (sale_id, user_id) DO UPDATE SET n = user_counts.n + EXCLUDED.n WHERE user_counts.n + EXCLUDED.n <= $4
RETURNING n`, pr.sale.ID, pr.user, pr.qty, pr.userLimit).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return api.Order{}, api.CodeLimitExceeded, nil
	case err != nil:
		return api.Order{}, outcomeOK, err
	}
	tag, err := tx.Exec(ctx, `UPDATE tiers SET stock = stock - $1, held = held + $1 WHERE id = $2 AND stock >= $1`,
		pr.qty, pr.sale.ID+"/"+pr.tier)
	if err != nil {
		return api.Order{}, outcomeOK, err
	}
	if tag.RowsAffected() == 0 {
		return api.Order{}, api.CodeSoldOut, nil
	}
	o = api.Order{
		OrderID: pr.orderID, Status: api.StatusPending, SaleID: pr.sale.ID, Tier: pr.tier, Quantity: pr.qty,
		AmountCents: pr.priceCents * int64(pr.qty), Currency: pr.currency, ExpiresAt: pr.expiresAt, UserID: pr.user,
	}
	if _, err := tx.Exec(ctx, `
INSERT INTO orders (id, sale_id, tier, user_id, idem_key, quantity, amount_cents, currency, status, expires_at)
VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'pending',$9)`,
		o.OrderID, o.SaleID, o.Tier, o.UserID, pr.key, o.Quantity, o.AmountCents, o.Currency, o.ExpiresAt); err != nil {
		return api.Order{}, outcomeOK, err
	}
	return o, outcomeOK, tx.Commit(ctx)
}

func (p *postgresStore) getOrder(ctx context.Context, id string) (api.Order, bool, error) {
	o, err := scanOrder(p.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id=$1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return o, false, nil
	}
	return o, err == nil, err
}

// release gives a pending order's tickets back to its tier and its user.
// It locks the user's count before the tier row, in the purchase's order,
// so that the two cannot deadlock.
func release(ctx context.Context, tx pgx.Tx, o *api.Order) error {
	if _, err := tx.Exec(ctx, `UPDATE user_counts SET n = n - $1 WHERE sale_id = $2 AND user_id = $3`,
		o.Quantity, o.SaleID, o.UserID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE tiers SET stock = stock + $1, held = held - $1 WHERE id = $2`, o.Quantity, o.SaleID+"/"+o.Tier)
	return err
}

func (p *postgresStore) cancel(ctx context.Context, id, user string) (api.Order, outcome, error) {
	var o api.Order
	var out outcome
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id=$1 FOR UPDATE`, id))
		switch {
		case errors.Is(err, pgx.ErrNoRows) || (err == nil && o.UserID != user):
			out = api.CodeNotFound
			return nil
		case err != nil:
			return err
		case o.Status == api.StatusCancelled:
			return nil
		case o.Status != api.StatusPending:
			out = "not_pending"
			return nil
		}
		o.Status = api.StatusCancelled
		if _, err := tx.Exec(ctx, `UPDATE orders SET status='cancelled' WHERE id=$1`, id); err != nil {
			return err
		}
		return release(ctx, tx, &o)
	})
	return o, out, err
}

func (p *postgresStore) pay(ctx context.Context, ev *api.PaymentEvent) (api.Order, outcome, error) {
	var o api.Order
	var out outcome
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		o, err = scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id=$1 FOR UPDATE`, ev.OrderID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			out = api.CodeNotFound
			return nil
		case err != nil:
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO payment_events (id) VALUES ($1) ON CONFLICT DO NOTHING`, ev.ID)
		if err != nil || tag.RowsAffected() == 0 {
			return err // a replayed event: answer with the order as it is
		}
		if ev.AmountCents != o.AmountCents || ev.Currency != o.Currency {
			out = "payment_mismatch"
			return errRollback
		}
		if o.Status != api.StatusPending {
			return nil
		}
		if ev.Type == api.PaymentSucceeded {
			o.Status = api.StatusPaid
			if _, err := tx.Exec(ctx, `UPDATE tiers SET held = held - $1, sold = sold + $1 WHERE id = $2`, o.Quantity, o.SaleID+"/"+o.Tier); err != nil {
				return err
			}
		} else {
			o.Status = api.StatusCancelled
			if err := release(ctx, tx, &o); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE orders SET status=$1 WHERE id=$2`, o.Status, o.OrderID)
		return err
	})
	if errors.Is(err, errRollback) {
		err = nil
	}
	return o, out, err
}

var errRollback = errors.New("shim: roll back")

func (p *postgresStore) tiers(ctx context.Context, s *api.SaleSpec) ([]api.TierView, error) {
	rows, err := p.pool.Query(ctx, `SELECT tier, name, price_cents, total, stock, held, sold FROM tiers WHERE sale_id=$1 ORDER BY pos`, s.ID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.TierView, error) {
		var t api.TierView
		err := r.Scan(&t.ID, &t.Name, &t.PriceCents, &t.Stock, &t.Available, &t.Held, &t.Sold)
		return t, err
	})
}

func (p *postgresStore) export(ctx context.Context, sale, cursor string, limit int) ([]api.Order, string, error) {
	rows, err := p.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders WHERE sale_id=$1 AND id > $2 ORDER BY id LIMIT $3`, sale, cursor, limit)
	if err != nil {
		return nil, "", err
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(orders) == limit {
		next = orders[len(orders)-1].OrderID
	}
	return orders, next, nil
}
