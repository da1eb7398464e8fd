package fleet

import "testing"

// TestPartitionOfPath: sale routes and order routes (whose ids carry their
// sale) land on the sale's partition; routes that span sales on the home
// partition 0; the node's own routes nowhere.
func TestPartitionOfPath(t *testing.T) {
	f := &Fleet{o: Options{Partitions: 7}}
	sale := PartitionOf([]byte("gig-42"), 7)
	for _, c := range []struct {
		path string
		want int
		ok   bool
	}{
		{"/v1/sales/gig-42", sale, true},
		{"/v1/sales/gig-42/purchase", sale, true},
		{"/v1/admin/sales/gig-42/close", sale, true},
		{"/v1/orders/gig-42.abcdefghijklmnopqrstuvwxyz", sale, true},
		{"/v1/orders/gig-42.abcdefghijklmnopqrstuvwxyz/cancel", sale, true},
		{"/v1/admin/orders/gig-42.abcdefghijklmnopqrstuvwxyz/refund", sale, true},
		{"/v1/sales", 0, true},
		{"/v1/me/orders", 0, true},
		{"/v1/admin/sales:load", 0, true},
		{"/v1/users", 0, true},
		{"/healthz", 0, false},
		{"/readyz", 0, false},
		{"/metrics", 0, false},
	} {
		got, ok := f.partitionOf([]byte(c.path))
		if got != c.want || ok != c.ok {
			t.Errorf("%s: partition %d %v, want %d %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

// TestPartitionOfSpreads: the partition does not follow the engine's shard
// (the same FNV-1a hash modulo the shard count), so a partition's sales
// still spread over its node's shards.
func TestPartitionOfSpreads(t *testing.T) {
	const partitions, shards = 2, 2
	seen := map[[2]int]int{}
	for i := range 1000 {
		id := []byte("sale" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)))
		h := uint32(2166136261)
		for _, c := range id {
			h ^= uint32(c)
			h *= 16777619
		}
		seen[[2]int{PartitionOf(id, partitions), int(h % shards)}]++
	}
	for p := range partitions {
		for s := range shards {
			if seen[[2]int{p, s}] < 150 {
				t.Errorf("partition %d, shard %d: %d of 1000 sales", p, s, seen[[2]int{p, s}])
			}
		}
	}
}
