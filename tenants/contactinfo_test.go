package tenants

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-playground/validator/v10"

	"github.com/switchboard/switchboard"
)

func contactStr(s string) *string { return &s }

// validContact is a complete, valid Canadian body; tests change one thing.
func validContact() ContactInfoInput {
	return ContactInfoInput{
		BusinessName:  contactStr("Corner Bakery"),
		SecondaryName: contactStr("Corner Bakery Ltd."),
		PhoneNumber:   contactStr("+14165550100"),
		AddressLine1:  contactStr("1 King St W"),
		AddressLine2:  contactStr("Suite 200"),
		PostalCode:    contactStr("M5H 1A1"),
		Province:      contactStr("ON"),
		Country:       contactStr("CA"),
	}
}

func TestContactInfoValid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*ContactInfoInput)
		want   ContactInfo
	}{
		{
			name:   "complete",
			change: func(*ContactInfoInput) {},
			want: ContactInfo{BusinessName: "Corner Bakery", SecondaryName: contactStr("Corner Bakery Ltd."),
				PhoneNumber: contactStr("+14165550100"), AddressLine1: "1 King St W", AddressLine2: contactStr("Suite 200"),
				PostalCode: "M5H 1A1", Province: contactStr("ON"), Country: "CA"},
		},
		{
			name: "every string trimmed, codes upper-cased, phone in E.164",
			change: func(in *ContactInfoInput) {
				*in = ContactInfoInput{
					BusinessName: contactStr("  Corner Bakery \t"), SecondaryName: contactStr("\n Ltd. "),
					PhoneNumber: contactStr(" +1 (416) 555-0100 "), AddressLine1: contactStr(" 1 King St W "),
					AddressLine2: contactStr(" Suite 200 "), PostalCode: contactStr(" m5h 1a1 "),
					Province: contactStr(" on "), Country: contactStr(" ca "),
				}
			},
			want: ContactInfo{BusinessName: "Corner Bakery", SecondaryName: contactStr("Ltd."),
				PhoneNumber: contactStr("+14165550100"), AddressLine1: "1 King St W", AddressLine2: contactStr("Suite 200"),
				PostalCode: "M5H 1A1", Province: contactStr("ON"), Country: "CA"},
		},
		{
			name: "optional fields left out stay nil",
			change: func(in *ContactInfoInput) {
				in.SecondaryName, in.PhoneNumber, in.AddressLine2, in.Province = nil, nil, nil, nil
			},
			want: ContactInfo{BusinessName: "Corner Bakery", AddressLine1: "1 King St W", PostalCode: "M5H 1A1", Country: "CA"},
		},
		{
			name: "200 characters, counted as characters",
			change: func(in *ContactInfoInput) {
				in.BusinessName = contactStr(strings.Repeat("é", 200))
			},
			want: ContactInfo{BusinessName: strings.Repeat("é", 200), SecondaryName: contactStr("Corner Bakery Ltd."),
				PhoneNumber: contactStr("+14165550100"), AddressLine1: "1 King St W", AddressLine2: contactStr("Suite 200"),
				PostalCode: "M5H 1A1", Province: contactStr("ON"), Country: "CA"},
		},
		{
			name: "US address",
			change: func(in *ContactInfoInput) {
				in.Country, in.Province, in.PostalCode, in.PhoneNumber = contactStr("us"), contactStr("CA"), contactStr("90210-1234"), contactStr("+1 212 555 0123")
			},
			want: ContactInfo{BusinessName: "Corner Bakery", SecondaryName: contactStr("Corner Bakery Ltd."),
				PhoneNumber: contactStr("+12125550123"), AddressLine1: "1 King St W", AddressLine2: contactStr("Suite 200"),
				PostalCode: "90210-1234", Province: contactStr("CA"), Country: "US"},
		},
		{
			name: "a country without a known postal format takes any code, as written",
			change: func(in *ContactInfoInput) {
				in.Country, in.Province, in.PostalCode, in.PhoneNumber = contactStr("IE"), contactStr("D"), contactStr("d02 x285 (Eircode)"), contactStr("+353 1 234 5678")
			},
			want: ContactInfo{BusinessName: "Corner Bakery", SecondaryName: contactStr("Corner Bakery Ltd."),
				PhoneNumber: contactStr("+35312345678"), AddressLine1: "1 King St W", AddressLine2: contactStr("Suite 200"),
				PostalCode: "d02 x285 (Eircode)", Province: contactStr("D"), Country: "IE"},
		},
		{
			name: "British postcode and a subdivision of three letters",
			change: func(in *ContactInfoInput) {
				in.Country, in.Province, in.PostalCode, in.PhoneNumber = contactStr("GB"), contactStr("eng"), contactStr("sw1a 1aa"), contactStr("+44 20 7946 0958")
			},
			want: ContactInfo{BusinessName: "Corner Bakery", SecondaryName: contactStr("Corner Bakery Ltd."),
				PhoneNumber: contactStr("+442079460958"), AddressLine1: "1 King St W", AddressLine2: contactStr("Suite 200"),
				PostalCode: "SW1A 1AA", Province: contactStr("ENG"), Country: "GB"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := validContact()
			tc.change(&in)
			got, err := in.Validate()
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %s\nwant %s", show(got), show(tc.want))
			}
		})
	}
}

func TestContactInfoInvalid(t *testing.T) {
	long := strings.Repeat("x", 201)
	for _, tc := range []struct {
		name   string
		change func(*ContactInfoInput)
		fields []string
	}{
		{"nothing sent", func(in *ContactInfoInput) { *in = ContactInfoInput{} },
			[]string{"businessName", "addressLine1", "postalCode", "country"}},
		{"required fields blank", func(in *ContactInfoInput) {
			in.BusinessName, in.AddressLine1, in.PostalCode, in.Country = contactStr(" "), contactStr(""), contactStr("\t"), contactStr("  ")
		}, []string{"businessName", "addressLine1", "postalCode", "country"}},
		{"optional fields sent blank", func(in *ContactInfoInput) {
			in.SecondaryName, in.PhoneNumber, in.AddressLine2, in.Province = contactStr(""), contactStr(" "), contactStr("\n"), contactStr("   ")
		}, []string{"secondaryName", "phoneNumber", "addressLine2", "province"}},
		{"every string too long", func(in *ContactInfoInput) {
			*in = ContactInfoInput{BusinessName: &long, SecondaryName: &long, PhoneNumber: &long, AddressLine1: &long,
				AddressLine2: &long, PostalCode: &long, Province: &long, Country: &long}
		}, []string{"businessName", "secondaryName", "phoneNumber", "addressLine1", "addressLine2", "postalCode", "province", "country"}},
		{"phone without +", func(in *ContactInfoInput) { in.PhoneNumber = contactStr("4165550100") }, []string{"phoneNumber"}},
		{"phone with 00 instead of +", func(in *ContactInfoInput) { in.PhoneNumber = contactStr("0014165550100") }, []string{"phoneNumber"}},
		{"phone too short", func(in *ContactInfoInput) { in.PhoneNumber = contactStr("+1416555") }, []string{"phoneNumber"}},
		{"phone with an unknown country code", func(in *ContactInfoInput) { in.PhoneNumber = contactStr("+9991234567") }, []string{"phoneNumber"}},
		{"phone with an extension", func(in *ContactInfoInput) { in.PhoneNumber = contactStr("+1 416 555 0100 ext. 12") }, []string{"phoneNumber"}},
		{"phone that is words", func(in *ContactInfoInput) { in.PhoneNumber = contactStr("+call me") }, []string{"phoneNumber"}},
		{"country of three letters", func(in *ContactInfoInput) { in.Country = contactStr("CAN") }, []string{"country"}},
		{"country that does not exist", func(in *ContactInfoInput) { in.Country = contactStr("ZZ") }, []string{"country"}},
		{"country with a digit", func(in *ContactInfoInput) { in.Country = contactStr("C1") }, []string{"country"}},
		{"country by name", func(in *ContactInfoInput) { in.Country = contactStr("Canada") }, []string{"country"}},
		{"province as a whole ISO 3166-2 code", func(in *ContactInfoInput) { in.Province = contactStr("CA-ON") }, []string{"province"}},
		{"province of another country", func(in *ContactInfoInput) {
			in.Country, in.PostalCode = contactStr("US"), contactStr("10001")
		}, []string{"province"}},
		{"province by name", func(in *ContactInfoInput) { in.Province = contactStr("Ontario") }, []string{"province"}},
		{"bad Canadian postal code", func(in *ContactInfoInput) { in.PostalCode = contactStr("12345") }, []string{"postalCode"}},
		{"Canadian postal code with a letter Canada does not use", func(in *ContactInfoInput) { in.PostalCode = contactStr("D5H 1A1") }, []string{"postalCode"}},
		{"bad US ZIP code", func(in *ContactInfoInput) {
			in.Country, in.Province, in.PostalCode = contactStr("US"), contactStr("NY"), contactStr("1000")
		}, []string{"postalCode"}},
		{"a bad country leaves province and postal code unjudged", func(in *ContactInfoInput) { in.Country = contactStr("XX") },
			[]string{"country"}},
		{"several at once, in body order", func(in *ContactInfoInput) {
			in.Country, in.PhoneNumber, in.BusinessName, in.Province, in.PostalCode = contactStr("CA"), contactStr("555-0100"), nil, contactStr("NY"), contactStr("10001")
		}, []string{"businessName", "phoneNumber", "postalCode", "province"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := validContact()
			tc.change(&in)
			got, err := in.Validate()
			var verr *switchboard.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate: %v, want a *switchboard.ValidationError", err)
			}
			var fields []string
			for _, f := range verr.Fields {
				if f.Message == "" {
					t.Errorf("%s has no message", f.Field)
				}
				fields = append(fields, f.Field)
			}
			if !reflect.DeepEqual(fields, tc.fields) {
				t.Fatalf("bad fields %v, want %v", fields, tc.fields)
			}
			if !reflect.DeepEqual(got, ContactInfo{}) {
				t.Fatalf("an invalid body returned %s", show(got))
			}
		})
	}
}

// TestContactInfoPostcodeFormats pins what hasPostcodeFormat assumes of
// go-playground/validator: it refuses every code of a country it has no
// format for (so the country must take any code), and knows the formats of
// the countries listed.
func TestContactInfoPostcodeFormats(t *testing.T) {
	v := validator.New()
	for _, c := range []string{"IE", "HK", "AE", "QA", "JM"} {
		if hasPostcodeFormat(c) {
			t.Fatalf("%s listed with a format", c)
		}
		for _, code := range []string{"D02 X285", "00000", "A", "12345"} {
			if v.Var(code, "postcode_iso3166_alpha2="+c) == nil {
				t.Fatalf("the validator now knows a format for %s: list it", c)
			}
		}
	}
	for c, code := range map[string]string{"CA": "K1A 0B1", "US": "12345", "GB": "EC1A 1BB", "DE": "10115",
		"FR": "75008", "NL": "1012 AB", "JP": "100-0001", "BR": "01310-100", "IN": "110001", "AU": "2000"} {
		if !hasPostcodeFormat(c) {
			t.Fatalf("%s not listed", c)
		}
		if err := v.Var(code, "postcode_iso3166_alpha2="+c); err != nil {
			t.Fatalf("%s %q: %v", c, code, err)
		}
	}
}

func show(c ContactInfo) string {
	p := func(s *string) string {
		if s == nil {
			return "nil"
		}
		return fmt.Sprintf("%q", *s)
	}
	return fmt.Sprintf("{%q %s %s %q %s %q %s %q}", c.BusinessName, p(c.SecondaryName), p(c.PhoneNumber),
		c.AddressLine1, p(c.AddressLine2), c.PostalCode, p(c.Province), c.Country)
}
