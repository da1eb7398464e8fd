package fleet

import (
	"encoding/base32"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
)

// TestPartitionOfOrder: an order id, its payout's order id and its
// provider order number (which carries the sale id's hash, not the id)
// all name the sale's partition, for any partition count.
func TestPartitionOfOrder(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	keys := base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	for i := range 2000 {
		sale := fmt.Sprintf("sale-%d-%x", i, rng.Uint64())
		var key [16]byte
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		order := sale + "." + keys.EncodeToString(key[:])
		number, ok := engine.ProviderOrderNumber(order)
		if !ok {
			t.Fatalf("no provider order number for %s", order)
		}
		partitions := 1 + rng.IntN(64)
		want := PartitionOf([]byte(sale), partitions)
		if got := PartitionOfOrder(order, partitions); got != want {
			t.Fatalf("order %s: partition %d of %d, want %d", order, got, partitions, want)
		}
		if got := PartitionOfOrder(number, partitions); got != want {
			t.Fatalf("number %s of %s: partition %d of %d, want %d", number, order, got, partitions, want)
		}
	}
	if got := PartitionOfOrder("", 8); got != 0 {
		t.Errorf("no order: partition %d, want the home partition 0", got)
	}
}
