package engine

import (
	"math/rand/v2"
	"testing"
)

// TestChangesWebhooksAgreesWithDecode: on random entries of every event
// kind, the kind-only scan finds a webhook change exactly when the full
// decode of the notifications reports one.
func TestChangesWebhooksAgreesWithDecode(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	evs := seedEvents()
	for round := range 2000 {
		var entry []byte
		for range r.IntN(8) {
			entry = appendEvent(entry, &evs[r.IntN(len(evs))])
		}
		decoded := false
		if err := DecodeNotifications(entry, func(n *Notification) {
			decoded = decoded || n.Kind == NotifyWebhooksChanged
		}); err != nil {
			t.Fatalf("seed %d, round %d: %v", seed, round, err)
		}
		if got := ChangesWebhooks(entry); got != decoded {
			t.Fatalf("seed %d, round %d: ChangesWebhooks %v, DecodeNotifications %v", seed, round, got, decoded)
		}
	}
}
