package tenants

import (
	"testing"
	"time"

	"github.com/switchboard/switchboard"
)

func TestAddMonths(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		from   string
		months int
		want   string
	}{
		{"2026-01-31T10:00:00.000Z", 1, "2026-02-28T10:00:00.000Z"},
		{"2028-01-31T10:00:00.000Z", 1, "2028-02-29T10:00:00.000Z"},
		{"2026-03-31T23:59:59.999Z", 1, "2026-04-30T23:59:59.999Z"},
		{"2026-11-23T10:00:00.000Z", 2, "2027-01-23T10:00:00.000Z"},
		{"2026-08-31T00:00:00.000Z", 6, "2027-02-28T00:00:00.000Z"},
		{"2026-01-15T08:30:00.000Z", 120, "2036-01-15T08:30:00.000Z"},
		{"2026-12-31T12:00:00.000Z", 12, "2027-12-31T12:00:00.000Z"},
	}
	for _, tt := range tests {
		if got := AddMonths(at(tt.from), tt.months); !got.Equal(at(tt.want)) {
			t.Errorf("AddMonths(%s, %d) = %s, want %s", tt.from, tt.months, got.Format(time.RFC3339Nano), tt.want)
		}
	}
}

func TestRetentionValidate(t *testing.T) {
	now := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)
	p := func(n int) *int { return &n }
	tests := []struct {
		name      string
		in        RetentionInput
		wantField string
		wantShred *time.Time
		period    *int
	}{
		{"no retention shreds now", RetentionInput{Strategy: "NO_RETENTION"}, "", &now, nil},
		{"no retention ignores a period", RetentionInput{Strategy: "NO_RETENTION", Period: p(3)}, "", &now, nil},
		{"indefinite", RetentionInput{Strategy: "INDEFINITE"}, "", nil, nil},
		{"indefinite ignores a period", RetentionInput{Strategy: "INDEFINITE", Period: p(500)}, "", nil, nil},
		{"temporary", RetentionInput{Strategy: "TEMPORARY", Period: p(1)}, "", ptr(time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)), p(1)},
		{"temporary without period", RetentionInput{Strategy: "TEMPORARY"}, "retention.period", nil, nil},
		{"temporary period 0", RetentionInput{Strategy: "TEMPORARY", Period: p(0)}, "retention.period", nil, nil},
		{"temporary period 121", RetentionInput{Strategy: "TEMPORARY", Period: p(121)}, "retention.period", nil, nil},
		{"missing strategy", RetentionInput{}, "retention.strategy", nil, nil},
		{"unknown strategy", RetentionInput{Strategy: "temporary"}, "retention.strategy", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.in.validate(now, "retention.")
			if tt.wantField != "" {
				verr, ok := err.(*switchboard.ValidationError)
				if !ok || len(verr.Fields) != 1 || verr.Fields[0].Field != tt.wantField {
					t.Fatalf("err = %v, want a validation error on %s", err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (r.ShredAt == nil) != (tt.wantShred == nil) || (r.ShredAt != nil && !r.ShredAt.Equal(*tt.wantShred)) {
				t.Errorf("shredAt = %v, want %v", r.ShredAt, tt.wantShred)
			}
			if (r.Period == nil) != (tt.period == nil) || (r.Period != nil && *r.Period != *tt.period) {
				t.Errorf("period = %v, want %v", r.Period, tt.period)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestIndustryIDsAreStable(t *testing.T) {
	got := Industries()
	if len(got) != 20 {
		t.Fatalf("%d sectors, want the 20 NAICS 2022 sectors", len(got))
	}
	// uuid5(NAMESPACE_URL, "naics:<code>"), computed independently with Python's uuid module.
	want := map[string]string{
		"11":    "8f56c423-943d-5275-bb9f-9db8783c6dad",
		"31-33": "9fa2423f-45c2-5157-88e1-e296ad751877",
		"92":    "ea60a328-0f33-5f44-827f-2837dbab892c",
	}
	for _, in := range got {
		if id, ok := want[in.Code]; ok && in.ID != id {
			t.Errorf("sector %s: id %s, want %s", in.Code, in.ID, id)
		}
		delete(want, in.Code)
	}
	if len(want) != 0 {
		t.Errorf("sectors missing: %v", want)
	}
}
