package fleet

import "testing"

// TestDeliveryIDs: the fleet's delivery ids name their partition and go
// back to the partition's own; a partition's answer carries the fleet id;
// the two routes are told apart from the webhook routes around them.
func TestDeliveryIDs(t *testing.T) {
	id, ok := fleetDeliveryID(3, []byte("dlv_42"))
	if !ok || string(id) != "dlv_p3_42" {
		t.Fatalf("fleetDeliveryID: %q %v", id, ok)
	}
	for _, c := range []struct {
		id    string
		p     int
		local string
		ok    bool
	}{
		{"dlv_p3_42", 3, "dlv_42", true},
		{"dlv_p0_7", 0, "dlv_7", true},
		{"dlv_42", 0, "dlv_42", true}, // a partition's own id: the home one's, as before
		{"dlv_p4_1", 0, "", false},    // no partition 4 of 4
		{"dlv_p03_1", 0, "", false},
		{"dlv_p-1_1", 0, "", false},
		{"dlv_p1_", 0, "", false},
		{"dlv_p1", 0, "", false},
	} {
		p, local, ok := splitDeliveryID([]byte(c.id), 4)
		if ok != c.ok || ok && (p != c.p || string(local) != c.local) {
			t.Errorf("splitDeliveryID(%q) = %d %q %v, want %d %q %v", c.id, p, local, ok, c.p, c.local, c.ok)
		}
	}
	raw, ok := withFleetID(1, []byte(`{"id":"dlv_9","event_id":"evt_p1_0_5_0","type":"order.created"}`))
	if want := `{"id":"dlv_p1_9","event_id":"evt_p1_0_5_0","type":"order.created"}`; !ok || string(raw) != want {
		t.Errorf("withFleetID: %s %v, want %s", raw, ok, want)
	}
	if _, ok := withFleetID(1, []byte(`{"event_id":"evt_1","id":"dlv_9"}`)); ok {
		t.Error("withFleetID read an object whose first member is not its id")
	}
	for _, c := range []struct {
		method, path   string
		list, ok       bool
		head, delivery string
	}{
		{"GET", "/v1/admin/webhooks/wh_a/deliveries", true, true, "", ""},
		{"POST", "/v1/admin/webhooks/wh_a/deliveries/dlv_p1_9:redeliver", false, true, "/v1/admin/webhooks/wh_a/deliveries/", "dlv_p1_9"},
		{"POST", "/v1/admin/webhooks/wh_a/deliveries", false, false, "", ""},
		{"GET", "/v1/admin/webhooks/wh_a", false, false, "", ""},
		{"DELETE", "/v1/admin/webhooks/wh_a", false, false, "", ""},
		{"GET", "/v1/admin/webhooks", false, false, "", ""},
		{"POST", "/v1/admin/webhooks/wh_a/deliveries/:redeliver", false, false, "", ""},
		{"POST", "/v1/admin/webhooks/wh_a/deliveries/a/b:redeliver", false, false, "", ""},
	} {
		list, head, delivery, ok := deliveriesRoute(c.method, []byte(c.path))
		if ok != c.ok || list != c.list || string(head) != c.head || string(delivery) != c.delivery {
			t.Errorf("%s %s: list %v head %q delivery %q ok %v", c.method, c.path, list, head, delivery, ok)
		}
	}
}
