package httpapi

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/onsale/onsale/engine"
	"github.com/valyala/fasthttp"
)

// Coupons' admin routes (engine/coupons.go holds the rules):
//
//	POST  /v1/admin/sales/{sale_id}/coupons          create; 201
//	GET   /v1/admin/sales/{sale_id}/coupons          list, with the uses taken
//	PATCH /v1/admin/sales/{sale_id}/coupons/{code}   caps, window, disabled

type couponBody struct {
	Code            string     `json:"code"`
	PercentOff      int        `json:"percent_off"`
	AmountOffCents  int64      `json:"amount_off_cents"`
	Tiers           []string   `json:"tiers"`
	UsesMax         int        `json:"uses_max"`
	UsesPerBuyerMax int        `json:"uses_per_buyer_max"`
	ValidFrom       *time.Time `json:"valid_from"`
	ValidUntil      *time.Time `json:"valid_until"`
	MinQuantity     int        `json:"min_quantity"`
	Disabled        bool       `json:"disabled"`
}

type couponPatchBody struct {
	UsesMax         *int       `json:"uses_max"`
	UsesPerBuyerMax *int       `json:"uses_per_buyer_max"`
	ValidFrom       *time.Time `json:"valid_from"`
	ValidUntil      *time.Time `json:"valid_until"`
	Disabled        *bool      `json:"disabled"`
}

var (
	couponsSegment = []byte("/coupons")
	methodGET      = []byte("GET")
	methodHEAD     = []byte("HEAD")
)

// couponRoute picks the route of /v1/admin/sales/{sale_id}/coupons by
// method: the path serves two routes, and route matching sees paths only.
func couponRoute(r route, method []byte) route {
	if r == routeAdminCreateCoupon && (bytes.Equal(method, methodGET) || bytes.Equal(method, methodHEAD)) {
		return routeAdminListCoupons
	}
	return r
}

// matchCouponRoute matches the tail after /v1/admin/sales/{sale_id}; rest
// is the path after /v1/admin/sales/.
func matchCouponRoute(rest, seg, tail []byte) (route, []byte, bool) {
	if bytes.Equal(tail, couponsSegment) {
		return routeAdminCreateCoupon, seg, true
	}
	if code, ok := bytes.CutPrefix(tail, couponsSegment); ok && len(code) > 1 && code[0] == '/' && bytes.IndexByte(code[1:], '/') < 0 {
		return routeAdminPatchCoupon, rest, true // "{sale_id}/coupons/{code}"
	}
	return routeNone, nil, false
}

func (s *Server) createCoupon(ctx *fasthttp.RequestCtx, saleID []byte, _ principal) {
	var body couponBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	cfg := engine.CouponConfig{Code: body.Code, PercentOff: body.PercentOff, AmountOffCents: body.AmountOffCents,
		Tiers: body.Tiers, UsesMax: body.UsesMax, UsesPerBuyerMax: body.UsesPerBuyerMax, MinQuantity: body.MinQuantity,
		Disabled: body.Disabled, ValidFromMs: optionalMs(body.ValidFrom), ValidUntilMs: optionalMs(body.ValidUntil)}
	if cfg.ValidFromMs < 0 || cfg.ValidUntilMs < 0 {
		writeProblem(ctx, codeInvalidRequest, "valid_from and valid_until must be after 1970", -1)
		return
	}
	c, err := s.eng.PutCoupon(s.engineCtx(ctx), string(saleID), cfg)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeCoupon(ctx, fasthttp.StatusCreated, &c)
}

func (s *Server) listCoupons(ctx *fasthttp.RequestCtx, saleID []byte, _ principal) {
	all, err := s.eng.Coupons(s.reqCtx(), string(saleID))
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	b := []byte(`{"coupons":[`)
	for i := range all {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCoupon(b, &all[i])
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// patchCoupon: param is "{sale_id}/coupons/{code}".
func (s *Server) patchCoupon(ctx *fasthttp.RequestCtx, param []byte, _ principal) {
	saleID, code, _ := bytes.Cut(param, couponsSegment[1:])
	saleID = bytes.TrimSuffix(saleID, []byte("/"))
	code = bytes.TrimPrefix(code, []byte("/"))
	var body couponPatchBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	p := engine.CouponPatch{UsesMax: body.UsesMax, UsesPerBuyerMax: body.UsesPerBuyerMax, Disabled: body.Disabled}
	if body.ValidFrom != nil {
		ms := body.ValidFrom.UnixMilli()
		p.ValidFromMs = &ms
	}
	if body.ValidUntil != nil {
		ms := body.ValidUntil.UnixMilli()
		p.ValidUntilMs = &ms
	}
	c, err := s.eng.PatchCoupon(s.engineCtx(ctx), string(saleID), string(code), p)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	writeCoupon(ctx, fasthttp.StatusOK, &c)
}

func optionalMs(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}

func writeCoupon(ctx *fasthttp.RequestCtx, status int, c *engine.Coupon) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(appendCoupon(nil, c), '\n'))
}

// appendCoupon appends the JSON of a coupon (schema Coupon in openapi.json).
func appendCoupon(b []byte, c *engine.Coupon) []byte {
	b = append(b, `{"code":`...)
	b = appendString(b, c.Code)
	if c.PercentOff > 0 {
		b = append(b, `,"percent_off":`...)
		b = strconv.AppendInt(b, int64(c.PercentOff), 10)
	} else {
		b = append(b, `,"amount_off_cents":`...)
		b = strconv.AppendInt(b, c.AmountOffCents, 10)
	}
	b = append(b, `,"tiers":[`...)
	for i, id := range c.Tiers {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, id)
	}
	b = fmt.Appendf(b, `],"uses":%d,"uses_max":%d,"uses_per_buyer_max":%d,"min_quantity":%d,"disabled":%t`,
		c.Uses, c.UsesMax, c.UsesPerBuyerMax, c.MinQuantity, c.Disabled)
	if c.ValidFromMs != 0 {
		b = append(b, `,"valid_from":`...)
		b = appendTime(b, c.ValidFromMs)
	}
	if c.ValidUntilMs != 0 {
		b = append(b, `,"valid_until":`...)
		b = appendTime(b, c.ValidUntilMs)
	}
	return append(b, '}')
}

// appendOrderPrice appends an order's unit price, and its coupon if any.
func appendOrderPrice(b []byte, o *engine.Order) []byte {
	b = append(b, `,"unit_price_cents":`...)
	b = strconv.AppendInt(b, o.UnitPriceCents, 10)
	if o.Coupon != "" {
		b = append(b, `,"coupon":`...)
		b = appendString(b, o.Coupon)
		b = append(b, `,"discount_cents":`...)
		b = strconv.AppendInt(b, o.DiscountCents, 10)
	}
	return b
}
