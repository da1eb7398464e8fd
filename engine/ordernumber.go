package engine

import (
	"context"
	"encoding/binary"
)

// Provider order numbers. WeChat Pay's out_trade_no takes 6 to 32 of
// [0-9A-Za-z_-|*] and UnionPay's orderId 8 to 40 letters and digits, but an
// order id is "<sale id>.<26 chars>", up to 91 characters with a '.'. So an
// order has a second name for the providers: the FNV-32a hash of its sale
// id (what routes a sale to its shard) and its 128-bit key, 160 bits in the
// order keys' base32 alphabet, exactly 32 lower-case letters and digits:
//
//	number = base32(be32(fnv32a(sale id)) || key)   (32 chars, [a-z2-7])
//
// It is reversible without a table: the hash names the shard, the key
// finds the order there, and the order's sale must hash to the same value.
// Keys are random, so two orders never share a number.

// ProviderOrderNumberLen is the length of every provider order number.
const ProviderOrderNumberLen = 32

// ProviderOrderNumber returns the provider order number of an order id;
// ok is false for a string that is not an order id.
func ProviderOrderNumber(orderID string) (string, bool) {
	saleID, k, ok := parseOrderID(orderID)
	if !ok {
		return "", false
	}
	return providerOrderNumber(saleID, k), true
}

// AppendProviderOrderNumber appends the provider order number of an order
// id the engine gave (it is not checked), without allocating: order JSON
// carries it.
func AppendProviderOrderNumber(b []byte, orderID string) []byte {
	dot := len(orderID) - orderKeyLen - 1
	if dot < 1 {
		return b
	}
	var src [orderKeyLen]byte
	copy(src[:], orderID[dot+1:])
	var dec [17]byte
	if n, err := orderKeyEncoding.Decode(dec[:], src[:]); err != nil || n != 16 {
		return b
	}
	var raw [20]byte
	binary.BigEndian.PutUint32(raw[:4], fnv32a(orderID[:dot]))
	copy(raw[4:], dec[:16])
	var out [ProviderOrderNumberLen]byte
	orderKeyEncoding.Encode(out[:], raw[:])
	return append(b, out[:]...)
}

func providerOrderNumber(saleID string, k orderKey) string {
	var raw [20]byte
	binary.BigEndian.PutUint32(raw[:4], fnv32a(saleID))
	copy(raw[4:], k[:])
	var out [ProviderOrderNumberLen]byte
	orderKeyEncoding.Encode(out[:], raw[:])
	return string(out[:])
}

// ProviderOrderNumberSaleHash returns the FNV-32a hash of the sale id a
// provider order number carries (what a fleet routes a sale's partition
// by, httpapi/fleet); ok is false for a string that is not a number.
func ProviderOrderNumberSaleHash(number string) (hash uint32, ok bool) {
	hash, _, ok = parseProviderOrderNumber(number)
	return hash, ok
}

// parseProviderOrderNumber splits a number into its sale hash and key.
func parseProviderOrderNumber(s string) (hash uint32, k orderKey, ok bool) {
	if len(s) != ProviderOrderNumberLen {
		return 0, k, false
	}
	var raw [20]byte
	n, err := orderKeyEncoding.Decode(raw[:], []byte(s))
	if err != nil || n != len(raw) {
		return 0, k, false
	}
	copy(k[:], raw[4:])
	return binary.BigEndian.Uint32(raw[:4]), k, true
}

// OrderIDForNumber returns the order id a provider order number names, or
// unknown_order.
func (e *Engine) OrderIDForNumber(ctx context.Context, number string) (string, error) {
	hash, k, ok := parseProviderOrderNumber(number)
	if !ok {
		return "", reject(CodeUnknownOrder, "no order %q", number)
	}
	r := getRequest()
	r.cmd = command{kind: cmdOrderByNumber, order: k, ticket: int(hash)}
	if err := e.send(e.shards[hash%uint32(len(e.shards))], r); err != nil {
		return "", err
	}
	if err := e.wait(ctx, r); err != nil {
		return "", err
	}
	id := formatOrderID(r.res.order.SaleID, k)
	putRequest(r)
	return id, nil
}

// decideOrderByNumber finds the order of cmdOrderByNumber (a read).
func (st *state) decideOrderByNumber(cmd *command) *Rejection {
	hash := uint32(cmd.ticket)
	o, _ := st.orderByKey(cmd.order)
	if o == nil || fnv32a(st.sales[o.sale].cfg.ID) != hash {
		return reject(CodeUnknownOrder, "no order with that provider order number")
	}
	return nil
}

func (st *state) answerOrderByNumber(cmd *command, res *result) {
	o, _ := st.orderByKey(cmd.order)
	res.order = Order{SaleID: st.sales[o.sale].cfg.ID}
}
