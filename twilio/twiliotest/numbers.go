package twiliotest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Number is a phone number an account holds, as the double holds it.
type Number struct {
	AccountSID  string
	SID         string // PN…
	PhoneNumber string // E.164
	SMSURL      string
	SMSMethod   string
	Created     time.Time
}

// Numbers returns a copy of every number an account holds, oldest first.
func (s *Server) Numbers() []Number {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Number, len(s.numbers))
	for i, n := range s.numbers {
		out[i] = *n
	}
	return out
}

// MarkUnavailable makes number (E.164) unavailable: searches skip it and
// buying it is refused with 21422.
func (s *Server) MarkUnavailable(number string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable[number] = true
}

// ExhaustArea makes the North American area code areaCode have no
// available numbers: searches there find none, buying there is refused
// with 21422.
func (s *Server) ExhaustArea(areaCode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exhausted[areaCode] = true
}

var places = map[string][2]string{
	"415": {"CA", "San Francisco"}, "212": {"NY", "New York"}, "312": {"IL", "Chicago"},
	"604": {"BC", "Vancouver"}, "416": {"ON", "Toronto"},
}

// areaOf is the area code of a North American number, or "".
func areaOf(number string) string {
	if len(number) == 12 && strings.HasPrefix(number, "+1") {
		return number[2:5]
	}
	return ""
}

// availableLocked reports whether number may be bought; s.mu is held.
func (s *Server) availableLocked(number string) bool {
	if s.unavailable[number] || s.exhausted[areaOf(number)] {
		return false
	}
	for _, n := range s.numbers {
		if n.PhoneNumber == number {
			return false
		}
	}
	return true
}

// available serves a search of local numbers: in the US and Canada, the
// numbers +1 AAA 555-0100 to -0199 of the area code AAA that are still
// available; elsewhere none. One page only, as at Twilio.
func (s *Server) available(w http.ResponseWriter, r *http.Request, account, country string) {
	q := r.URL.Query()
	filters := url.Values{}
	for _, k := range []string{"AreaCode", "SmsEnabled", "MmsEnabled", "VoiceEnabled", "Contains"} {
		if v := q.Get(k); v != "" {
			filters.Set(k, v)
		}
	}
	area := q.Get("AreaCode")
	if area != "" {
		if _, err := strconv.Atoi(area); err != nil {
			twilioError(w, http.StatusBadRequest, 20001, "Invalid AreaCode: must be a number")
			return
		}
	}
	var all []map[string]any
	var sids []string
	if def, ok := defaultArea[country]; ok && q.Get("SmsEnabled") != "false" {
		if area == "" {
			area = def
		}
		place := places[area]
		s.mu.Lock()
		for i := range 100 {
			number := fmt.Sprintf("+1%s555%04d", area, 100+i)
			if len(area) != 3 || !s.availableLocked(number) {
				continue
			}
			all = append(all, map[string]any{
				"address_requirements": "none",
				"beta":                 false,
				// Twilio writes these two in capitals here, unlike elsewhere.
				"capabilities":  map[string]bool{"voice": true, "SMS": true, "MMS": true},
				"friendly_name": friendlyNumber(number),
				"iso_country":   country,
				"lata":          "722",
				"latitude":      "37.774900",
				"locality":      place[1],
				"longitude":     "-122.419400",
				"phone_number":  number,
				"postal_code":   nil,
				"rate_center":   strings.ToUpper(place[1]),
				"region":        place[0],
			})
			sids = append(sids, number)
		}
		s.mu.Unlock()
	}
	path := accountsPath + "/" + account + "/AvailablePhoneNumbers/" + country + "/Local.json"
	s.writePage(w, r, path, "available_phone_numbers", filters, all, sids, true)
}

// friendlyNumber is how Twilio writes a number for people: (415) 555-0100
// in North America, E.164 elsewhere.
func friendlyNumber(number string) string {
	if areaOf(number) == "" {
		return number
	}
	return "(" + number[2:5] + ") " + number[5:8] + "-" + number[8:]
}

// isWebURL reports whether s is an absolute http(s) URL, all Twilio takes
// as a webhook.
func isWebURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// buy serves the purchase of a number by an account.
func (s *Server) buy(w http.ResponseWriter, r *http.Request, account string) {
	number, smsURL, method := r.PostForm.Get("PhoneNumber"), r.PostForm.Get("SmsUrl"), r.PostForm.Get("SmsMethod")
	switch {
	case number == "":
		twilioError(w, http.StatusBadRequest, 20001, "Missing required parameter PhoneNumber")
		return
	case !e164.MatchString(number):
		twilioError(w, http.StatusBadRequest, codeNumberInvalid, "PhoneNumber "+number+" is invalid")
		return
	case smsURL != "" && !isWebURL(smsURL):
		twilioError(w, http.StatusBadRequest, 21502, "SmsUrl is not a valid URL")
		return
	case method != "" && method != http.MethodGet && method != http.MethodPost:
		twilioError(w, http.StatusBadRequest, 20001, "SmsMethod must be GET or POST")
		return
	}
	if method == "" {
		method = http.MethodPost
	}
	s.mu.Lock()
	if !s.availableLocked(number) {
		s.mu.Unlock()
		twilioError(w, http.StatusBadRequest, codeNumberUnavailable, "PhoneNumber "+number+" is not available")
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	n := &Number{AccountSID: account, SID: "PN" + randomHex(16), PhoneNumber: number, SMSURL: smsURL, SMSMethod: method, Created: now}
	s.numbers = append(s.numbers, n)
	res := numberResource(n)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, res)
}

// numberResource is n's JSON as Twilio shapes an incoming phone number.
func numberResource(n *Number) map[string]any {
	uri := accountsPath + "/" + n.AccountSID + "/IncomingPhoneNumbers/" + n.SID + ".json"
	na := areaOf(n.PhoneNumber) != ""
	return map[string]any{
		"account_sid":              n.AccountSID,
		"address_requirements":     "none",
		"address_sid":              nil,
		"api_version":              "2010-04-01",
		"beta":                     false,
		"bundle_sid":               nil,
		"capabilities":             map[string]bool{"fax": false, "mms": na, "sms": true, "voice": true},
		"date_created":             twilioDate(n.Created),
		"date_updated":             twilioDate(n.Created),
		"emergency_address_sid":    nil,
		"emergency_address_status": "unregistered",
		"emergency_status":         "Active",
		"friendly_name":            friendlyNumber(n.PhoneNumber),
		"identity_sid":             nil,
		"origin":                   "twilio",
		"phone_number":             n.PhoneNumber,
		"sid":                      n.SID,
		"sms_application_sid":      "",
		"sms_fallback_method":      "POST",
		"sms_fallback_url":         "",
		"sms_method":               n.SMSMethod,
		"sms_url":                  n.SMSURL,
		"status":                   "in-use",
		"status_callback":          "",
		"status_callback_method":   "POST",
		"subresource_uris": map[string]string{
			"assigned_add_ons": strings.TrimSuffix(uri, ".json") + "/AssignedAddOns.json",
		},
		"trunk_sid":              nil,
		"type":                   "local",
		"uri":                    uri,
		"voice_application_sid":  nil,
		"voice_caller_id_lookup": false,
		"voice_fallback_method":  "POST",
		"voice_fallback_url":     nil,
		"voice_method":           "POST",
		"voice_receive_mode":     "voice",
		"voice_url":              nil,
	}
}

// matchesPattern reports whether number contains pattern, where "*" in
// pattern stands for any one character: Twilio's PhoneNumber filter of
// incoming numbers matches partial numbers.
func matchesPattern(number, pattern string) bool {
	for i := 0; i+len(pattern) <= len(number); i++ {
		ok := true
		for j := 0; j < len(pattern) && ok; j++ {
			ok = pattern[j] == '*' || pattern[j] == number[i+j]
		}
		if ok {
			return true
		}
	}
	return false
}

// listNumbers serves the list of an account's numbers, filtered by
// PhoneNumber (a pattern) and FriendlyName.
func (s *Server) listNumbers(w http.ResponseWriter, r *http.Request, account string) {
	q := r.URL.Query()
	filters := url.Values{}
	for _, k := range []string{"PhoneNumber", "FriendlyName"} {
		if v := q.Get(k); v != "" {
			filters.Set(k, v)
		}
	}
	pattern, name := filters.Get("PhoneNumber"), filters.Get("FriendlyName")
	s.mu.Lock()
	var all []map[string]any
	var sids []string
	for _, n := range s.numbers {
		if n.AccountSID != account || (pattern != "" && !matchesPattern(n.PhoneNumber, pattern)) ||
			(name != "" && friendlyNumber(n.PhoneNumber) != name) {
			continue
		}
		all = append(all, numberResource(n))
		sids = append(sids, n.SID)
	}
	s.mu.Unlock()
	s.writePage(w, r, accountsPath+"/"+account+"/IncomingPhoneNumbers.json", "incoming_phone_numbers", filters, all, sids, false)
}

// number serves one of an account's numbers: fetch, or release (204).
func (s *Server) number(w http.ResponseWriter, r *http.Request, account, sid string) {
	s.mu.Lock()
	i := slices.IndexFunc(s.numbers, func(n *Number) bool { return n.SID == sid && n.AccountSID == account })
	if i < 0 {
		s.mu.Unlock()
		notFound(w, r)
		return
	}
	if r.Method == http.MethodDelete {
		// Released, the number is available again.
		s.numbers = slices.Delete(s.numbers, i, i+1)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	res := numberResource(s.numbers[i])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, res)
}
