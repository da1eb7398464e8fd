package fleet

import (
	"slices"
	"testing"
)

// TestFleetCursor: the fleet's cursor holds one position per partition and
// refuses anything else, a single node's cursor included.
func TestFleetCursor(t *testing.T) {
	cs := []string{"", "AQIDBAU", cursorDone}
	got, ok := decodeCursor(encodeCursor(cs), 3)
	if !ok || !slices.Equal(got, cs) {
		t.Fatalf("round trip: %q %v", got, ok)
	}
	if got, ok := decodeCursor("", 3); !ok || !slices.Equal(got, []string{"", "", ""}) {
		t.Errorf("no cursor: %q %v", got, ok)
	}
	for _, bad := range []string{"AQIDBAU", encodeCursor(cs[:2]), cursorPrefix + "!!", cursorPrefix + "bm90LWpzb24"} {
		if _, ok := decodeCursor(bad, 3); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestPartitionOfBody: a check-in or a payment notification goes to the
// partition of the sale it names; a body naming none to the home one.
func TestPartitionOfBody(t *testing.T) {
	f := &Fleet{o: Options{Partitions: 7}}
	sale := PartitionOf([]byte("gig-42"), 7)
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"ticket":"gig-42.abcdefghijklmnopqrstuvwxyz.1","gate":"A"}`, sale},
		{`{"id":"e1","type":"payment.succeeded","order_id":"gig-42.abcdefghijklmnopqrstuvwxyz"}`, sale},
		{`{"code":"not a code","gate":"A"}`, 0},
		{`not json`, 0},
		{`{}`, 0},
	} {
		if got := f.partitionOfBody([]byte(c.body)); got != c.want {
			t.Errorf("%s: partition %d, want %d", c.body, got, c.want)
		}
	}
}
