package switchboard

import (
	"strings"

	"github.com/go-playground/validator/v10"
	"github.com/nyaruka/phonenumbers"
)

var countries = validator.New()

// NormalizeCountry upper-cases an ISO 3166-1 alpha-2 code, trimmed, and
// reports whether it is one.
func NormalizeCountry(s string) (string, bool) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return "", false
	}
	if countries.Var(c, "iso3166_1_alpha2") != nil {
		return "", false
	}
	return c, true
}

// NormalizePhone returns a valid phone number in E.164, trimmed and parsed
// with libphonenumber. A number without + is parsed only when country (ISO
// 3166-1 alpha-2; "" for none) says where it is from; a number with an
// extension is refused (E.164 cannot express one).
func NormalizePhone(s, country string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	region := ""
	if !strings.HasPrefix(s, "+") {
		if country == "" {
			return "", false
		}
		region = strings.ToUpper(country)
	}
	n, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(n) || n.GetExtension() != "" {
		return "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

// PrintableASCII reports whether s is 1..maxLen bytes of printable ASCII
// (space allowed or not): the rule of header values a client picks, such as
// an Idempotency-Key or an X-Request-Id.
func PrintableASCII(s string, maxLen int, space bool) bool {
	if len(s) < 1 || len(s) > maxLen {
		return false
	}
	lo := byte(0x21)
	if space {
		lo = 0x20
	}
	for i := 0; i < len(s); i++ {
		if s[i] < lo || s[i] > 0x7e {
			return false
		}
	}
	return true
}
