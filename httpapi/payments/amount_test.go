package payments

import "testing"

func TestParseDecimalMinor(t *testing.T) {
	for in, want := range map[string]int64{
		"0.10": 10, "19999.99": 1999999, "0.01": 1, "0": 0, "5": 500, "5.5": 550, "5.50": 550,
		"10000000000000.00": 1_000_000_000_000_000,
	} {
		if got, err := ParseDecimalMinor(in); err != nil || got != want {
			t.Errorf("ParseDecimalMinor(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", ".", ".5", "5.", "1.234", "0.001", "-1", "+1", "1e3", "1E3", " 1", "1 ", "01", "00.10",
		"1,00", "0x10", "１", "NaN", "Inf", "10000000000000.01", "99999999999999999999", "1.2.3", "1..2",
	} {
		if got, err := ParseDecimalMinor(in); err == nil {
			t.Errorf("ParseDecimalMinor(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseForm(t *testing.T) {
	f, err := parseForm([]byte("b=2&a=x%2By+z&c="))
	if err != nil {
		t.Fatal(err)
	}
	if f.get("a") != "x+y z" || f.get("b") != "2" || !f.has("c") || f.has("d") {
		t.Fatalf("decoded %v", f)
	}
	if got := string(f.signedContent(true)); got != "a=x+y z&b=2" {
		t.Errorf("signed content without empty values %q", got)
	}
	if got := string(f.signedContent(false, "b")); got != "a=x+y z&c=" {
		t.Errorf("signed content with empty values %q", got)
	}
	for _, in := range []string{"", "a", "=1", "a=1&a=2", "a=%zz", "%zz=1", "a=1&&b=2"} {
		if _, err := parseForm([]byte(in)); err == nil {
			t.Errorf("parseForm(%q) accepted", in)
		}
	}
}
