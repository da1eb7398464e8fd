package engine

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// withSection registers a section for the length of a test.
func withSection(t *testing.T, s snapshotSection) {
	t.Helper()
	registerSnapshotSection(s)
	t.Cleanup(func() { snapshotSections[s.tag] = nil })
}

// TestSnapshotSectionsRoundTrip: a section's bytes come back to its restore,
// after the orders, and an empty section writes nothing.
func TestSnapshotSectionsRoundTrip(t *testing.T) {
	var restored []uint64
	withSection(t, snapshotSection{
		tag: 200,
		freeze: func(st *state) func([]byte) []byte {
			n := uint64(st.orders.n)
			return func(b []byte) []byte { return binary.AppendUvarint(b, n) }
		},
		restore: func(st *state, body []byte) error {
			v, k := binary.Uvarint(body)
			if k != len(body) || v != uint64(st.orders.n) {
				return errors.New("section body does not match the restored orders")
			}
			restored = append(restored, v)
			return nil
		},
	})
	withSection(t, snapshotSection{
		tag:     201,
		freeze:  func(*state) func([]byte) []byte { return nil },
		restore: func(*state, []byte) error { return errors.New("an empty section was written") },
	})
	st := randomState(rand.New(rand.NewPCG(7, 8)), 500, false)
	chunks := st.snapshotEncoding()
	if _, err := restoreSnapshot(chunks); err != nil {
		t.Fatal(err)
	}
	if len(restored) != 1 || restored[0] != uint64(st.orders.n) {
		t.Fatalf("section restored as %v, want [%d]", restored, st.orders.n)
	}

	// A build that does not know the tag refuses the snapshot.
	snapshotSections[200] = nil
	if _, err := restoreSnapshot(chunks); !errors.Is(err, errCorrupt) {
		t.Fatalf("unknown section: got %v, want a corruption error", err)
	}
}
