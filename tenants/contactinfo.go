package tenants

import (
	"strings"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/nyaruka/phonenumbers"
)

// ContactInfoInput is the flat body of PUT /v1/customers/{id}/contact-info
// before validation. A nil field was left out.
type ContactInfoInput struct {
	BusinessName, SecondaryName, PhoneNumber, AddressLine1, AddressLine2, PostalCode, Province, Country *string
}

// ISO 3166 codes and postal code formats come from go-playground/validator;
// phone numbers from nyaruka/phonenumbers (libphonenumber's data).
var validate = validator.New()

// postcodeFormats lists the countries for which the validator knows a postal
// code format (the keys of its postCodePatternDict, v10.30.1). Elsewhere any
// code of 1 to 200 characters is accepted: the validator would refuse every
// code of a country it has no pattern for.
var postcodeFormats = map[string]bool{}

func init() {
	for _, c := range []string{"AD", "AM", "AR", "AS", "AT", "AU", "AX", "AZ", "BA", "BB", "BD", "BE", "BG", "BH", "BM", "BN", "BR", "BY", "CA", "CC", "CH", "CK", "CL", "CN", "CR", "CS", "CV", "CX", "CY", "CZ", "DE", "DK", "DO", "DZ", "EC", "EE", "EG", "ES", "ET", "FI", "FK", "FM", "FO", "FR", "GB", "GE", "GF", "GG", "GL", "GN", "GP", "GR", "GS", "GT", "GU", "GW", "HM", "HN", "HR", "HT", "HU", "ID", "IL", "IM", "IN", "IO", "IQ", "IS", "IT", "JE", "JO", "JP", "KE", "KG", "KH", "KR", "KW", "KZ", "LA", "LB", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "MA", "MC", "MD", "ME", "MG", "MH", "MK", "MN", "MP", "MQ", "MT", "MU", "MV", "MX", "MY", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NZ", "OM", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PT", "PW", "PY", "RE", "RO", "RS", "RU", "SA", "SE", "SG", "SH", "SI", "SJ", "SK", "SM", "SN", "SO", "SZ", "TC", "TH", "TJ", "TM", "TN", "TR", "TW", "UA", "US", "UY", "UZ", "VA", "VE", "VI", "VN", "WF", "XK", "YT", "YU", "ZA", "ZM"} {
		postcodeFormats[c] = true
	}
}

// Validate trims every string, checks API.md's rules and returns the
// normalised contact info, or a *ValidationError naming every bad field by
// its JSON name.
func (in ContactInfoInput) Validate() (ContactInfo, error) {
	var verr ValidationError
	text := func(name string, v *string, required bool) *string {
		if v == nil {
			if required {
				verr.Add(name, "is required")
			}
			return nil
		}
		s := strings.TrimSpace(*v)
		if n := utf8.RuneCountInString(s); n < 1 || n > 200 {
			verr.Add(name, "must be 1 to 200 characters after trimming")
			return nil
		}
		return &s
	}
	business := text("businessName", in.BusinessName, true)
	secondary := text("secondaryName", in.SecondaryName, false)
	phone := text("phoneNumber", in.PhoneNumber, false)
	line1 := text("addressLine1", in.AddressLine1, true)
	line2 := text("addressLine2", in.AddressLine2, false)
	postal := text("postalCode", in.PostalCode, true)
	province := text("province", in.Province, false)
	country := text("country", in.Country, true)

	if country != nil {
		c := strings.ToUpper(*country)
		country = &c
		if len(c) != 2 || validate.Var(c, "iso3166_1_alpha2") != nil {
			verr.Add("country", "must be an ISO 3166-1 alpha-2 country code")
			country = nil
		}
	}
	if phone != nil {
		e164, ok := normalisePhone(*phone)
		if ok {
			phone = &e164
		} else {
			verr.Add("phoneNumber", "must be a valid phone number in E.164 form (+ and country code)")
		}
	}
	if province != nil && country != nil {
		p := strings.ToUpper(*province)
		province = &p
		if strings.Contains(p, "-") || validate.Var(*country+"-"+p, "iso3166_2") != nil {
			verr.Add("province", "must be the subdivision part of an ISO 3166-2 code of the country (ON for CA-ON)")
		}
	}
	if postal != nil && country != nil && postcodeFormats[*country] {
		p := strings.ToUpper(*postal)
		if validate.Var(p, "postcode_iso3166_alpha2="+*country) != nil {
			verr.Add("postalCode", "is not a valid postal code for the country")
		} else {
			postal = &p
		}
	}
	if err := verr.Err(); err != nil {
		return ContactInfo{}, err
	}
	return ContactInfo{
		BusinessName: *business, SecondaryName: secondary, PhoneNumber: phone,
		AddressLine1: *line1, AddressLine2: line2, PostalCode: *postal, Province: province, Country: *country,
	}, nil
}

// normalisePhone parses an international number (it must start with +) and
// returns it in E.164 if it is a valid number.
func normalisePhone(s string) (string, bool) {
	if !strings.HasPrefix(s, "+") {
		return "", false
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return phonenumbers.Format(num, phonenumbers.E164), true
}
