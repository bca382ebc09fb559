package switchboard_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard/switchboard"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, parts := range [][]string{{"0193a0c4-ffff-7000-8000-000000000000"}, {"1732960000000", "id-1"}} {
		c := switchboard.EncodeCursor(parts...)
		got, err := switchboard.DecodeCursor(c, len(parts))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(parts) {
			t.Fatalf("round trip of %v: %v %v", parts, got, err)
		}
	}
	for _, bad := range []string{"", "!!!", switchboard.EncodeCursor("a", "b"), switchboard.EncodeCursor(""), "\xff"} {
		_, err := switchboard.DecodeCursor(bad, 1)
		var verr *switchboard.ValidationError
		if !errors.As(err, &verr) || verr.Fields[0].Field != "cursor" {
			t.Errorf("cursor %q: %v, want a validation error naming cursor", bad, err)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct {
		in, country, want string
		ok                bool
	}{
		{"+1 (415) 555-0100", "", "+14155550100", true},
		{" +44 20 7946 0958 ", "", "+442079460958", true},
		{"415 555 0100", "", "", false},
		{"415 555 0100", "us", "+14155550100", true},
		{"+1 415 555 0100 ext. 12", "", "", false},
		{"+1 555", "", "", false},
		{"", "US", "", false},
	} {
		got, ok := switchboard.NormalizePhone(tc.in, tc.country)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q, %v", tc.in, tc.country, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNormalizeCountry(t *testing.T) {
	for in, want := range map[string]string{"ca": "CA", " DE ": "DE", "XX": "", "CAN": "", "C1": "", "": ""} {
		got, ok := switchboard.NormalizeCountry(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeCountry(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestErrors(t *testing.T) {
	var err error = &switchboard.VersionConflictError{Current: 7}
	if !errors.Is(err, switchboard.ErrVersionConflict) || err.Error() != "version conflict: current version is 7" {
		t.Fatalf("version conflict: %v", err)
	}
	var verr switchboard.ValidationError
	if verr.Err() != nil {
		t.Fatal("an empty ValidationError is an error")
	}
	verr.Add("a", "is bad")
	verr.Add("b[1].c", "too long")
	if verr.Err() == nil || verr.Error() != "validation failed: a: is bad; b[1].c: too long" {
		t.Fatalf("validation error: %v", verr.Error())
	}
}
