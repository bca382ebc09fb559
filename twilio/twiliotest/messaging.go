package twiliotest

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
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

// Message is a message an account created, as the double holds it.
type Message struct {
	AccountSID     string
	SID            string // SM…, or MM… with media
	To, From, Body string
	// Direction is Twilio's: outbound-api for a message created through
	// the API, inbound for one Receive made.
	Direction string
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
		Created: now, Updated: now, Direction: "outbound-api"}
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
		"direction":             m.Direction,
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
