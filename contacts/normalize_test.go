package contacts

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	s := func(v string) Field[string] { return Field[string]{Set: true, Value: v} }
	tests := []struct {
		name  string
		in    Input
		field string // "" = valid
		check func(Input) bool
	}{
		{"email trimmed and lower-cased", Input{Email: s("  Ann@Example.COM ")}, "", func(i Input) bool { return i.Email.Value == "ann@example.com" }},
		{"email with a name", Input{Email: s("Ann <ann@example.com>")}, "email", nil},
		{"not an email", Input{Email: s("ann")}, "email", nil},
		{"phone formatted", Input{Phone: s("+1 (415) 555-0100")}, "", func(i Input) bool { return i.Phone.Value == "+14155550100" }},
		{"national phone without country", Input{Phone: s("(415) 555-0100")}, "phone", nil},
		{"national phone with country", Input{Phone: s("(415) 555-0100"), Country: s("us")}, "", func(i Input) bool {
			return i.Phone.Value == "+14155550100" && i.Country.Value == "US"
		}},
		{"invalid number", Input{Phone: s("+1 000")}, "phone", nil},
		{"name with accents", Input{FirstName: s(" Zoë-Anne O'Brien ")}, "", func(i Input) bool { return i.FirstName.Value == "Zoë-Anne O'Brien" }},
		{"name with digits", Input{LastName: s("R2D2")}, "lastName", nil},
		{"name too long", Input{FirstName: s(strings.Repeat("a", 101))}, "firstName", nil},
		{"future birth date", Input{DateOfBirth: s("2030-01-01")}, "dateOfBirth", nil},
		{"bad date", Input{DateOfBirth: s("01/02/1990")}, "dateOfBirth", nil},
		{"gender", Input{Gender: s("male")}, "gender", nil},
		{"country", Input{Country: s("XX")}, "country", nil},
		{"attribute name", Input{CustomAttributes: Field[[]Attribute]{Set: true, Value: []Attribute{{"ok_1", "v"}, {"no-dash", "v"}}}}, "customAttributes[1].name", nil},
		{"attribute value", Input{CustomAttributes: Field[[]Attribute]{Set: true, Value: []Attribute{{"a", strings.Repeat("v", 1001)}}}}, "customAttributes[0].value", nil},
		{"too many attributes", Input{CustomAttributes: Field[[]Attribute]{Set: true, Value: make([]Attribute, 101)}}, "customAttributes", nil},
		{"channel type", Input{Channels: Field[[]Channel]{Set: true, Value: []Channel{{"fax", "1"}}}}, "channels[0].type", nil},
		{"channel address", Input{Channels: Field[[]Channel]{Set: true, Value: []Channel{{"email", "A@B.example"}, {"sms", "nope"}}}}, "channels[1].address", nil},
		{"consent value", Input{Consents: Field[[]ConsentInput]{Set: true, Value: []ConsentInput{{Topic: "sms", Value: "yes"}}}}, "consents[0].value", nil},
		{"null is fine", Input{Email: Field[string]{Set: true, Null: true}}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs := normalize(tt.in, "data[2].", now)
			if tt.field == "" {
				if len(errs) != 0 {
					t.Fatalf("errors %v", errs)
				}
				if tt.check != nil && !tt.check(out) {
					t.Fatalf("normalised to %+v", out)
				}
				return
			}
			if len(errs) == 0 || errs[0].Field != "data[2]."+tt.field {
				t.Fatalf("errors %v, want one on data[2].%s", errs, tt.field)
			}
		})
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"ann@example.com", "+1 (415) 555-0100", "Zoë", "1990-01-02", "", " ", "\x00", "<a@b>"} {
		f.Add(s, s, s, "US")
	}
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, email, phone, name, country string) {
		in := Input{
			Email: Field[string]{Set: true, Value: email}, Phone: Field[string]{Set: true, Value: phone},
			FirstName: Field[string]{Set: true, Value: name}, DateOfBirth: Field[string]{Set: true, Value: name},
			Country:  Field[string]{Set: true, Value: country},
			Channels: Field[[]Channel]{Set: true, Value: []Channel{{"email", email}, {"sms", phone}}},
		}
		out, errs := normalize(in, "", now)
		if len(errs) > 0 {
			return
		}
		// Accepted values are normalised: normalising again changes nothing.
		again, errs := normalize(out, "", now)
		if len(errs) > 0 || again.Email.Value != out.Email.Value || again.Phone.Value != out.Phone.Value {
			t.Fatalf("normalisation is not idempotent: %q → %q → %q", email, out.Email.Value, again.Email.Value)
		}
		if !strings.HasPrefix(out.Phone.Value, "+") || !utf8.ValidString(out.FirstName.Value) {
			t.Fatalf("accepted %q as phone %q", phone, out.Phone.Value)
		}
	})
}
