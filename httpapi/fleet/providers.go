package fleet

import (
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Payment providers' notifications (POST /v1/payments/{stripe, alipay,
// wechatpay, unionpay}) name their order by what the payment was created
// with: the order id, or its 32-character provider order number
// (engine/ordernumber.go), which carries the FNV-32a hash of the sale id
// and not the id itself. PartitionOf is a function of that same hash, so
// the number names its partition without a table, a lookup or a fan-out.
// A WeChat Pay notification's order is encrypted with the merchant's key,
// so the body is read by httpapi (Server.NotificationOrder: verified,
// then the order taken from it), not here, and main joins the two.

// partitionOfHash is PartitionOf of a sale id's FNV-32a hash.
func partitionOfHash(h uint32, partitions int) int {
	return int((h * 0x9E3779B1 >> 16) % uint32(partitions))
}

// PartitionOfOrder is the partition of what a provider names an order
// by: an order id ("<sale id>.<key>"), a payout id's order id, or a
// provider order number. "" is the home partition, 0.
func PartitionOfOrder(order string, partitions int) int {
	if len(order) == engine.ProviderOrderNumberLen && !strings.Contains(order, ".") {
		if h, ok := engine.ProviderOrderNumberSaleHash(order); ok {
			return partitionOfHash(h, partitions)
		}
	}
	if order == "" {
		return 0
	}
	return PartitionOf(saleOfOrder([]byte(order)), partitions)
}

// RouteOrder routes a request about order (PartitionOfOrder) as Route
// routes a sale's: false if this node owns the order's partition and
// serves the request itself; forwarded to the owner, whose answer is the
// answer, or refused (503) otherwise.
func (f *Fleet) RouteOrder(ctx *fasthttp.RequestCtx, order string) bool {
	return f.serve(ctx, PartitionOfOrder(order, f.o.Partitions))
}
