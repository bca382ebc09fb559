package twiliotest

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Routes under a sub-account, as RouteCount and FailNextOn name them.
// {Sid} stands for any account SID, {Country} for an ISO country code,
// {NumberSid} for a phone number's SID (PN…) and {MessageSid} for a
// message's (SM… or MM…).
const (
	RouteAvailableLocal = "GET /2010-04-01/Accounts/{Sid}/AvailablePhoneNumbers/{Country}/Local.json"
	RouteNumberBuy      = "POST /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers.json"
	RouteNumberList     = "GET /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers.json"
	RouteNumberFetch    = "GET /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers/{NumberSid}.json"
	RouteNumberRelease  = "DELETE /2010-04-01/Accounts/{Sid}/IncomingPhoneNumbers/{NumberSid}.json"
	RouteMessageCreate  = "POST /2010-04-01/Accounts/{Sid}/Messages.json"
	RouteMessageList    = "GET /2010-04-01/Accounts/{Sid}/Messages.json"
	RouteMessageFetch   = "GET /2010-04-01/Accounts/{Sid}/Messages/{MessageSid}.json"
	RouteMessageUpdate  = "POST /2010-04-01/Accounts/{Sid}/Messages/{MessageSid}.json"
	RouteMessageDelete  = "DELETE /2010-04-01/Accounts/{Sid}/Messages/{MessageSid}.json"
)

// Twilio error codes the double answers.
const (
	codeInvalidTo          = 21211 // "To" is not a valid phone number
	codeNumberInvalid      = 21421 // PhoneNumber is invalid
	codeNumberUnavailable  = 21422 // PhoneNumber is not available
	codeOptedOut           = 21610 // the recipient replied STOP
	codeFromNotYours       = 21606 // "From" is not a number of the account
	codeMessageNotFinished = 20009 // cannot delete a message not yet final
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

// Message is a message an account created, as the double holds it.
type Message struct {
	AccountSID     string
	SID            string // SM…, or MM… with media
	To, From, Body string
	// Status is Twilio's: queued when created; only SetMessageStatus
	// moves it.
	Status         string
	StatusCallback string
	MediaURLs      []string
	Segments       int
	ErrorCode      int // 0: none
	Created        time.Time
	Updated        time.Time
	Sent           time.Time // zero until the status says sent
}

// notFinal are the statuses of a message Twilio will not delete.
var notFinal = map[string]bool{"accepted": true, "scheduled": true, "queued": true, "sending": true, "receiving": true}

// sentStatuses are the statuses of a message that has a date_sent.
var sentStatuses = map[string]bool{"sent": true, "delivered": true, "undelivered": true, "read": true}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// Messages returns a copy of every message, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
		out[i].MediaURLs = slices.Clone(m.MediaURLs)
	}
	return out
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

// SetMessageStatus sets the status of the message sid, as Twilio does
// when the carrier reports (a status of a sent message also stamps its
// date_sent, once). It reports whether the message exists.
func (s *Server) SetMessageStatus(sid, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.message(sid)
	if m == nil {
		return false
	}
	now := s.now().UTC().Truncate(time.Second)
	m.Status, m.Updated = status, now
	if sentStatuses[status] && m.Sent.IsZero() {
		m.Sent = now
	}
	return true
}

// SetMessageErrorCode sets the error_code of the message sid (0: none),
// as Twilio does for a message that failed. It reports whether the
// message exists.
func (s *Server) SetMessageErrorCode(sid string, code int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.message(sid)
	if m == nil {
		return false
	}
	m.ErrorCode, m.Updated = code, s.now().UTC().Truncate(time.Second)
	return true
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

// LoseNextMessageAnswer makes the next message creation happen while its
// answer never reaches the caller: the connection is closed without a
// response.
func (s *Server) LoseNextMessageAnswer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseMessage = true
}

// RefuseNextMessage makes the next message creation answer 400 with
// Twilio's error code (21610, the recipient opted out, say) and create
// nothing.
func (s *Server) RefuseNextMessage(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseNext = code
}

// message finds a message by SID; s.mu is held.
func (s *Server) message(sid string) *Message {
	for _, m := range s.messages {
		if m.SID == sid {
			return m
		}
	}
	return nil
}

// knownAccount reports whether sid is the master account or one of its
// sub-accounts; s.mu is held.
func (s *Server) knownAccount(sid string) bool {
	if sid == s.master.SID {
		return true
	}
	for _, a := range s.accounts {
		if a.SID == sid {
			return true
		}
	}
	return false
}

// serveAccountResource serves the routes under an account.
func (s *Server) serveAccountResource(w http.ResponseWriter, r *http.Request, route string, params map[string]string) {
	s.mu.Lock()
	known := s.knownAccount(params["Sid"])
	s.mu.Unlock()
	if !known {
		notFound(w, r)
		return
	}
	switch route {
	case RouteAvailableLocal:
		s.available(w, r, params["Sid"], params["Country"])
	case RouteNumberBuy:
		s.buy(w, r, params["Sid"])
	case RouteNumberList:
		s.listNumbers(w, r, params["Sid"])
	case RouteNumberFetch, RouteNumberRelease:
		s.number(w, r, params["Sid"], params["NumberSid"])
	case RouteMessageCreate:
		s.createMessage(w, r, params["Sid"])
	case RouteMessageList:
		s.listMessages(w, r, params["Sid"])
	default:
		s.oneMessage(w, r, params["Sid"], params["MessageSid"])
	}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
}

// defaultArea is the area code searched in a country when none is given.
var defaultArea = map[string]string{"US": "415", "CA": "604"}

// places are the region and locality of the area codes the double knows.
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

// refusals are the messages of the Twilio errors RefuseNextMessage knows.
var refusals = map[int]string{
	codeInvalidTo:    "The 'To' number is not a valid phone number.",
	codeOptedOut:     "Attempt to send to unsubscribed recipient",
	21408:            "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
	21612:            "The 'To' phone number is not currently reachable using the 'From' phone number via SMS.",
	21614:            "'To' number is not a valid mobile number",
	codeFromNotYours: "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account",
}

// segments is how many SMS segments body takes: ASCII counts as GSM-7
// (160 characters, 153 per segment when split), anything else as UCS-2
// (70, 67 per segment).
func segments(body string) int {
	n, single, multi := len(body), 160, 153
	for _, r := range body {
		if r > 0x7e || (r < 0x20 && r != '\n' && r != '\r') {
			n, single, multi = len(utf16.Encode([]rune(body))), 70, 67
			break
		}
	}
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}

// createMessage serves the creation of a message by an account.
func (s *Server) createMessage(w http.ResponseWriter, r *http.Request, account string) {
	f := r.PostForm
	to, from, body, callback := f.Get("To"), f.Get("From"), f.Get("Body"), f.Get("StatusCallback")
	media := f["MediaUrl"]

	s.mu.Lock()
	refuse := s.refuseNext
	s.refuseNext = 0
	owned := slices.ContainsFunc(s.numbers, func(n *Number) bool { return n.AccountSID == account && n.PhoneNumber == from })
	s.mu.Unlock()

	switch {
	case refuse != 0:
		message, ok := refusals[refuse]
		if !ok {
			message = "Twilio refused the message (error " + strconv.Itoa(refuse) + ")"
		}
		twilioError(w, http.StatusBadRequest, refuse, message)
		return
	case to == "":
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case !e164.MatchString(to):
		twilioError(w, http.StatusBadRequest, codeInvalidTo, "The 'To' number "+to+" is not a valid phone number.")
		return
	case from == "":
		twilioError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
		return
	case !owned:
		twilioError(w, http.StatusBadRequest, codeFromNotYours, "The 'From' phone number provided ("+from+") is not a valid message-capable Twilio phone number for this destination/account")
		return
	case body == "" && len(media) == 0:
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case len([]rune(body)) > 1600:
		twilioError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
		return
	case len(media) > 10:
		twilioError(w, http.StatusBadRequest, 21623, "Number of media files exceeds allowed limit of 10.")
		return
	case slices.ContainsFunc(media, func(u string) bool { return !isWebURL(u) }):
		twilioError(w, http.StatusBadRequest, 21620, "Invalid media URL(s).")
		return
	case callback != "" && !isWebURL(callback):
		twilioError(w, http.StatusBadRequest, 21609, "Invalid StatusCallback url.")
		return
	}

	prefix := "SM"
	if len(media) > 0 {
		prefix = "MM"
	}
	s.mu.Lock()
	now := s.now().UTC().Truncate(time.Second)
	m := &Message{AccountSID: account, SID: prefix + randomHex(16), To: to, From: from, Body: body,
		Status: "queued", StatusCallback: callback, MediaURLs: slices.Clone(media), Segments: segments(body),
		Created: now, Updated: now}
	s.messages = append(s.messages, m)
	lost := s.loseMessage
	s.loseMessage = false
	res := messageResource(m)
	s.mu.Unlock()

	if lost {
		// The message exists; the caller never hears of it.
		lose(w)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

// messageResource is m's JSON as Twilio shapes a message.
func messageResource(m *Message) map[string]any {
	base := accountsPath + "/" + m.AccountSID + "/Messages/" + m.SID
	var sent, code any
	if !m.Sent.IsZero() {
		sent = twilioDate(m.Sent)
	}
	if m.ErrorCode != 0 {
		code = m.ErrorCode
	}
	return map[string]any{
		"account_sid":           m.AccountSID,
		"api_version":           "2010-04-01",
		"body":                  m.Body,
		"date_created":          twilioDate(m.Created),
		"date_sent":             sent,
		"date_updated":          twilioDate(m.Updated),
		"direction":             "outbound-api",
		"error_code":            code,
		"error_message":         nil,
		"from":                  m.From,
		"messaging_service_sid": nil,
		"num_media":             strconv.Itoa(len(m.MediaURLs)),
		"num_segments":          strconv.Itoa(m.Segments),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                m.Status,
		"subresource_uris": map[string]string{
			"media":    base + "/Media.json",
			"feedback": base + "/Feedback.json",
		},
		"to":  m.To,
		"uri": base + ".json",
	}
}

// sentDay reads a DateSent filter: YYYY-MM-DD, or a date and time in
// RFC 3339 (as twilio-go writes it), of which the UTC day counts.
func sentDay(v string) (time.Time, bool) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, true
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, false
	}
	y, mo, d := t.UTC().Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC), true
}

// listMessages serves the list of an account's messages, newest first,
// filtered by To, From and DateSent (that day), DateSent< (on or before)
// and DateSent> (on or after), in whole UTC days. A message not sent yet
// has no date_sent and matches no DateSent filter.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, account string) {
	q := r.URL.Query()
	filters := url.Values{}
	for _, k := range []string{"To", "From", "DateSent", "DateSent<", "DateSent>"} {
		if v := q.Get(k); v != "" {
			filters.Set(k, v)
		}
	}
	days := map[string]time.Time{}
	for _, k := range []string{"DateSent", "DateSent<", "DateSent>"} {
		if v := filters.Get(k); v != "" {
			d, ok := sentDay(v)
			if !ok {
				twilioError(w, http.StatusBadRequest, 20001, "Invalid "+k+": expected a date as YYYY-MM-DD")
				return
			}
			days[k] = d
		}
	}
	keep := func(m *Message) bool {
		if m.AccountSID != account || (filters.Has("To") && m.To != filters.Get("To")) || (filters.Has("From") && m.From != filters.Get("From")) {
			return false
		}
		if len(days) == 0 {
			return true
		}
		if m.Sent.IsZero() {
			return false
		}
		y, mo, d := m.Sent.UTC().Date()
		day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
		if on, ok := days["DateSent"]; ok && !day.Equal(on) {
			return false
		}
		if before, ok := days["DateSent<"]; ok && day.After(before) {
			return false
		}
		if after, ok := days["DateSent>"]; ok && day.Before(after) {
			return false
		}
		return true
	}
	s.mu.Lock()
	var all []map[string]any
	var sids []string
	for i := len(s.messages) - 1; i >= 0; i-- {
		if m := s.messages[i]; keep(m) {
			all = append(all, messageResource(m))
			sids = append(sids, m.SID)
		}
	}
	s.mu.Unlock()
	s.writePage(w, r, accountsPath+"/"+account+"/Messages.json", "messages", filters, all, sids, false)
}

// oneMessage serves one of an account's messages: fetch, update (only an
// empty Body, which redacts it) or delete (204, once its status is final).
func (s *Server) oneMessage(w http.ResponseWriter, r *http.Request, account, sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.messages, func(m *Message) bool { return m.SID == sid && m.AccountSID == account })
	if i < 0 {
		notFound(w, r)
		return
	}
	m := s.messages[i]
	switch r.Method {
	case http.MethodDelete:
		if notFinal[m.Status] {
			twilioError(w, http.StatusBadRequest, codeMessageNotFinished, "Cannot delete message because delivery has not been completed.")
			return
		}
		s.messages = slices.Delete(s.messages, i, i+1)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
		body, hasBody := r.PostForm["Body"]
		switch {
		case r.PostForm.Has("Status"):
			twilioError(w, http.StatusBadRequest, 20001, "Only a scheduled message can be canceled")
			return
		case hasBody && (len(body) != 1 || body[0] != ""):
			twilioError(w, http.StatusBadRequest, 20001, "A message's Body can only be updated to the empty string, to redact it")
			return
		case hasBody:
			m.Body, m.Updated = "", s.now().UTC().Truncate(time.Second)
		}
	}
	writeJSON(w, http.StatusOK, messageResource(m))
}
