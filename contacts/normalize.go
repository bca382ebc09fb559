package contacts

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard/switchboard"
)

// Limits of API.md.
const (
	maxAttributes = 100
	maxAttrValue  = 1000
	maxChannels   = 20
	maxConsents   = 100
	maxID         = 200
)

var (
	namePattern  = regexp.MustCompile(`^[\p{L}\p{M}.'\- ]{1,100}$`)
	attrPattern  = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	topicPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)
)

// fieldErrors collects errors named by JSON path.
type fieldErrors struct {
	prefix string
	errs   []switchboard.FieldError
}

func (f *fieldErrors) add(field, msg string) {
	f.errs = append(f.errs, switchboard.FieldError{Field: f.prefix + field, Message: msg})
}

// NormalizeEmail trims and lower-cases an email address and checks it is
// one (net/mail, no display name).
func NormalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > 254 {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", false
	}
	// .invalid can never be a real address (RFC 2606), and
	// anonymized-<id>@example.invalid is what anonymization writes.
	if strings.HasSuffix(s, ".invalid") {
		return "", false
	}
	return s, true
}

// normalizeID trims an external identifier.
func normalizeID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	n := utf8.RuneCountInString(s)
	return s, n >= 1 && n <= maxID
}

// normalizeChannel normalises a channel address by its type.
func normalizeChannel(typ, addr, country string) (string, bool) {
	switch typ {
	case "email":
		return NormalizeEmail(addr)
	case "sms", "whatsapp":
		return switchboard.NormalizePhone(addr, country)
	}
	return "", false
}

// normalize validates in and returns it normalised. prefix names the item
// in errors ("data[3]."). now bounds dateOfBirth.
func normalize(in Input, prefix string, now time.Time) (Input, []switchboard.FieldError) {
	fe := &fieldErrors{prefix: prefix}
	country := ""
	if in.Country.Set && !in.Country.Null {
		if c, ok := switchboard.NormalizeCountry(in.Country.Value); ok {
			in.Country.Value, country = c, c
		} else {
			fe.add("country", "must be an ISO 3166-1 alpha-2 country code")
		}
	}
	str := func(f *Field[string], name string, norm func(string) (string, bool), msg string) {
		if !f.Set || f.Null {
			return
		}
		v, ok := norm(f.Value)
		if !ok {
			fe.add(name, msg)
			return
		}
		f.Value = v
	}
	str(&in.Email, "email", NormalizeEmail, "must be an email address")
	str(&in.Phone, "phone", func(s string) (string, bool) { return switchboard.NormalizePhone(s, country) },
		"must be a valid phone number in E.164 (+ and country code), or national with a country")
	str(&in.ExternalID, "externalId", normalizeID, "must be 1 to 200 characters")
	str(&in.CrmID, "crmId", normalizeID, "must be 1 to 200 characters")
	name := func(s string) (string, bool) {
		s = strings.TrimSpace(s)
		return s, namePattern.MatchString(s)
	}
	str(&in.FirstName, "firstName", name, `must be 1 to 100 letters, spaces, ".", "'" or "-"`)
	str(&in.LastName, "lastName", name, `must be 1 to 100 letters, spaces, ".", "'" or "-"`)
	str(&in.DateOfBirth, "dateOfBirth", func(s string) (string, bool) {
		d, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
		return d.Format(time.DateOnly), err == nil && d.Before(now)
	}, "must be a date (YYYY-MM-DD) in the past")
	str(&in.Gender, "gender", func(s string) (string, bool) {
		return s, s == GenderMale || s == GenderFemale || s == GenderNotSpecified
	}, "must be Male, Female or NotSpecified")

	if in.Channels.Set && !in.Channels.Null {
		if len(in.Channels.Value) > maxChannels {
			fe.add("channels", "at most 20 channels")
		}
		for i, ch := range in.Channels.Value {
			addr, ok := normalizeChannel(ch.Type, ch.Address, country)
			switch {
			case ch.Type != "sms" && ch.Type != "whatsapp" && ch.Type != "email":
				fe.add(indexed("channels", i, "type"), "must be sms, whatsapp or email")
			case !ok:
				fe.add(indexed("channels", i, "address"), "is not a valid address for its type")
			default:
				in.Channels.Value[i].Address = addr
			}
		}
	}
	if in.CustomAttributes.Set && !in.CustomAttributes.Null {
		if len(in.CustomAttributes.Value) > maxAttributes {
			fe.add("customAttributes", "at most 100 attributes")
		}
		seen := map[string]bool{}
		for i, a := range in.CustomAttributes.Value {
			switch {
			case !attrPattern.MatchString(a.Name):
				fe.add(indexed("customAttributes", i, "name"), "must match ^[A-Za-z0-9_]{1,64}$")
			case seen[a.Name]:
				fe.add(indexed("customAttributes", i, "name"), "appears twice")
			case utf8.RuneCountInString(a.Value) > maxAttrValue:
				fe.add(indexed("customAttributes", i, "value"), "at most 1000 characters")
			}
			seen[a.Name] = true
		}
	}
	if in.Consents.Set && !in.Consents.Null {
		if len(in.Consents.Value) > maxConsents {
			fe.add("consents", "at most 100 consents")
		}
		seen := map[string]bool{}
		for i, c := range in.Consents.Value {
			switch {
			case !topicPattern.MatchString(c.Topic):
				fe.add(indexed("consents", i, "topic"), "must be 1 to 100 letters, digits, '_', '.', ':' or '-'")
			case seen[c.Topic]:
				fe.add(indexed("consents", i, "topic"), "appears twice")
			case c.Value != "True" && c.Value != "False" && c.Value != "AwaitingConfirmation":
				fe.add(indexed("consents", i, "value"), "must be True, False or AwaitingConfirmation")
			case utf8.RuneCountInString(c.Source) > 200:
				fe.add(indexed("consents", i, "source"), "at most 200 characters")
			}
			seen[c.Topic] = true
		}
	}
	return in, fe.errs
}

func indexed(name string, i int, field string) string {
	return name + "[" + strconv.Itoa(i) + "]." + field
}
