package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
)

// The Client is the twilio-go adapter of the messages.Twilio port too:
// phone numbers and messages of a sub-account, reached with the master
// credentials and the sub-account's SID in the path.
//
// Its errors follow the port: a refusal (4xx other than 404 and 429) is a
// *messages.TwilioError; 429 wraps messages.ErrTwilioRateLimited and
// tenants.ErrUpstreamUnavailable; 404 wraps messages.ErrTwilioNotFound;
// everything else (5xx, no answer in time, a connection that failed, an
// answer that is not Twilio's) wraps tenants.ErrUpstreamUnavailable. A
// string that is not a SID of the right kind never reaches Twilio (twilio-go
// puts SIDs into the path unescaped): the call fails with
// messages.ErrTwilioNotFound, whatever the method, deletions included.
var _ messages.Twilio = (*Client)(nil)

// searchPageSize is how many available numbers one search asks for: the
// first with SMS is taken.
const searchPageSize = 5

// maxRefusalText bounds how much of Twilio's message a refusal repeats.
const maxRefusalText = 300

// isSID reports whether s is a SID with one of the two-letter prefixes
// followed by 32 lower-case hex digits.
func isSID(s string, prefixes ...string) bool { return switchboard.IsTwilioSID(s, prefixes...) }

// isMessageSID: an SMS is SM…, a message with media MM….
func isMessageSID(s string) bool { return isSID(s, "SM", "MM") }

func isNumberSID(s string) bool { return isSID(s, "PN") }

// notFound is the error of a call refused before any request because a SID
// cannot name a resource.
func notFound(op, what string) error {
	return fmt.Errorf("%s: %w: not %s", op, messages.ErrTwilioNotFound, what)
}

// SearchNumber returns the first available local number with SMS in
// country, in areaCode if not empty. None available, a country that is not
// two letters or an area code that is not a number, is a
// *messages.TwilioError with code messages.CodeNoNumbersInArea.
func (c *Client) SearchNumber(ctx context.Context, accountSID, country, areaCode string) (string, error) {
	const op = "search twilio numbers"
	if !isAccountSID(accountSID) {
		return "", notFound(op, "an account SID")
	}
	none := func(why string) error {
		return fmt.Errorf("%s: %w", op, &messages.TwilioError{Status: http.StatusBadRequest, Code: messages.CodeNoNumbersInArea, Message: why})
	}
	country = strings.ToUpper(country)
	if len(country) != 2 || country[0] < 'A' || country[0] > 'Z' || country[1] < 'A' || country[1] > 'Z' {
		return "", none("not an ISO 3166 alpha-2 country code")
	}
	params := &api.ListAvailablePhoneNumberLocalParams{}
	params.SetPathAccountSid(accountSID).SetSmsEnabled(true).SetPageSize(searchPageSize).SetLimit(searchPageSize)
	if areaCode != "" {
		// twilio-go sends AreaCode as a number: "0xx" would lose its zero.
		n, err := strconv.Atoi(areaCode)
		if err != nil || n <= 0 || strconv.Itoa(n) != areaCode {
			return "", none("the area code is not a number")
		}
		params.SetAreaCode(n)
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	list, err := svc.ListAvailablePhoneNumberLocal(country, params)
	if err != nil {
		return "", ex.failMessaging(op, err)
	}
	for _, n := range list {
		if n.PhoneNumber == nil || *n.PhoneNumber == "" || (n.Capabilities != nil && !n.Capabilities.Sms) {
			continue
		}
		return *n.PhoneNumber, nil
	}
	where := "in " + country
	if areaCode != "" {
		where += " area code " + areaCode
	}
	return "", none("no local numbers with SMS available " + where)
}

// BuyNumber buys phoneNumber into the sub-account with smsURL as its
// inbound webhook (POST). A lost answer (tenants.ErrUpstreamUnavailable)
// may have bought it all the same: FindNumber tells.
func (c *Client) BuyNumber(ctx context.Context, accountSID, phoneNumber, smsURL string) (messages.Number, error) {
	const op = "buy twilio number"
	if !isAccountSID(accountSID) {
		return messages.Number{}, notFound(op, "an account SID")
	}
	params := &api.CreateIncomingPhoneNumberParams{}
	params.SetPathAccountSid(accountSID).SetPhoneNumber(phoneNumber).SetSmsUrl(smsURL).SetSmsMethod(http.MethodPost)
	svc, ex := c.begin(ctx)
	defer ex.finish()
	n, err := svc.CreateIncomingPhoneNumber(params)
	if err != nil {
		return messages.Number{}, ex.failMessaging(op, err)
	}
	num := toNumber(n)
	if !isNumberSID(num.SID) || num.PhoneNumber == "" {
		return messages.Number{}, fmt.Errorf("%s: %w: the answer lacks the number's sid or phone number", op, tenants.ErrUpstreamUnavailable)
	}
	return num, nil
}

// FindNumber returns the sub-account's number phoneNumber, or an error
// wrapping messages.ErrTwilioNotFound. Twilio's PhoneNumber filter matches
// partial numbers, so the answer is matched again exactly.
func (c *Client) FindNumber(ctx context.Context, accountSID, phoneNumber string) (messages.Number, error) {
	const op = "find twilio number"
	if !isAccountSID(accountSID) {
		return messages.Number{}, notFound(op, "an account SID")
	}
	params := &api.ListIncomingPhoneNumberParams{}
	params.SetPathAccountSid(accountSID)
	if survivesQueryEncoding(phoneNumber) {
		params.SetPhoneNumber(phoneNumber).SetPageSize(listPageSize)
	} else {
		params.SetPageSize(maxPageSize)
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	list, err := svc.ListIncomingPhoneNumber(params)
	if err != nil {
		return messages.Number{}, ex.failMessaging(op, err)
	}
	for i := range list {
		if n := toNumber(&list[i]); n.PhoneNumber == phoneNumber && isNumberSID(n.SID) {
			return n, nil
		}
	}
	return messages.Number{}, fmt.Errorf("%s: %w", op, messages.ErrTwilioNotFound)
}

// ReleaseNumber releases a number of the sub-account; one Twilio does not
// know (404) is released.
func (c *Client) ReleaseNumber(ctx context.Context, accountSID, numberSID string) error {
	const op = "release twilio number"
	if !isAccountSID(accountSID) {
		return notFound(op, "an account SID")
	}
	if !isNumberSID(numberSID) {
		return notFound(op, "a phone number SID")
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	err := svc.DeleteIncomingPhoneNumber(numberSID, (&api.DeleteIncomingPhoneNumberParams{}).SetPathAccountSid(accountSID))
	return ex.goneIsDone(op, err)
}

// CreateMessage sends s from the sub-account. A lost answer
// (tenants.ErrUpstreamUnavailable) may have created the message all the
// same.
func (c *Client) CreateMessage(ctx context.Context, accountSID string, s messages.Send) (messages.TwilioMessage, error) {
	const op = "create twilio message"
	if !isAccountSID(accountSID) {
		return messages.TwilioMessage{}, notFound(op, "an account SID")
	}
	params := &api.CreateMessageParams{}
	params.SetPathAccountSid(accountSID).SetTo(s.To).SetFrom(s.From)
	if s.Body != "" {
		params.SetBody(s.Body)
	}
	if len(s.MediaURLs) > 0 {
		params.SetMediaUrl(append([]string(nil), s.MediaURLs...))
	}
	if s.StatusCallback != "" {
		params.SetStatusCallback(s.StatusCallback)
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	m, err := svc.CreateMessage(params)
	if err != nil {
		return messages.TwilioMessage{}, ex.failMessaging(op, err)
	}
	return checkedMessage(op, m)
}

// FetchMessage reads one message of the sub-account.
func (c *Client) FetchMessage(ctx context.Context, accountSID, sid string) (messages.TwilioMessage, error) {
	const op = "fetch twilio message"
	if !isAccountSID(accountSID) {
		return messages.TwilioMessage{}, notFound(op, "an account SID")
	}
	if !isMessageSID(sid) {
		return messages.TwilioMessage{}, notFound(op, "a message SID")
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	m, err := svc.FetchMessage(sid, (&api.FetchMessageParams{}).SetPathAccountSid(accountSID))
	if err != nil {
		return messages.TwilioMessage{}, ex.failMessaging(op, err)
	}
	return checkedMessage(op, m)
}

// ListMessages pages through the sub-account's messages to f.To from
// f.From, newest first (Twilio's order), sent within the days (UTC) of
// f.SentAfter and f.SentBefore when they are set, calling each with every
// message until it returns false: no page after that is asked for. A
// message not sent yet has no date_sent: with a DateSent bound, Twilio
// leaves it out.
func (c *Client) ListMessages(ctx context.Context, accountSID string, f messages.ListFilter, each func(messages.TwilioMessage) bool) error {
	const op = "list twilio messages"
	if !isAccountSID(accountSID) {
		return notFound(op, "an account SID")
	}
	params := &api.ListMessageParams{}
	params.SetPathAccountSid(accountSID).SetPageSize(maxPageSize)
	// A filter twilio-go would mangle (see survivesQueryEncoding) is
	// applied here instead.
	var recheckTo, recheckFrom bool
	if f.To != "" {
		if recheckTo = !survivesQueryEncoding(f.To); !recheckTo {
			params.SetTo(f.To)
		}
	}
	if f.From != "" {
		if recheckFrom = !survivesQueryEncoding(f.From); !recheckFrom {
			params.SetFrom(f.From)
		}
	}
	// Twilio counts whole days in UTC; twilio-go sends RFC 3339.
	day := func(t time.Time) time.Time {
		y, m, d := t.UTC().Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	if !f.SentAfter.IsZero() {
		params.SetDateSentAfter(day(f.SentAfter))
	}
	if !f.SentBefore.IsZero() {
		params.SetDateSentBefore(day(f.SentBefore))
	}
	token, page := "", ""
	for {
		next, err := c.messagePage(ctx, op, params, token, page, func(m messages.TwilioMessage) bool {
			if (recheckTo && m.To != f.To) || (recheckFrom && m.From != f.From) {
				return true
			}
			return each(m)
		})
		if err != nil || next == "" {
			return err
		}
		u, err := url.Parse(next)
		if err != nil {
			return fmt.Errorf("%s: %w: a next page Twilio did not name", op, tenants.ErrUpstreamUnavailable)
		}
		token, page = u.Query().Get("PageToken"), u.Query().Get("Page")
		if token == "" {
			return fmt.Errorf("%s: %w: a next page without its token", op, tenants.ErrUpstreamUnavailable)
		}
	}
}

// messagePage reads one page of a message list and hands its messages to
// each; it returns the next page's URI, "" when there is none or each
// stopped.
func (c *Client) messagePage(ctx context.Context, op string, params *api.ListMessageParams, token, page string, each func(messages.TwilioMessage) bool) (string, error) {
	svc, ex := c.begin(ctx)
	defer ex.finish()
	resp, err := svc.PageMessage(params, token, page)
	if err != nil {
		return "", ex.failMessaging(op, err)
	}
	for i := range resp.Messages {
		m := toMessage(&resp.Messages[i])
		if !isMessageSID(m.SID) {
			return "", fmt.Errorf("%s: %w: a listed message lacks its sid", op, tenants.ErrUpstreamUnavailable)
		}
		if !each(m) {
			return "", nil
		}
	}
	if resp.NextPageUri == nil {
		return "", nil
	}
	return *resp.NextPageUri, nil
}

// RedactMessage erases a message's body at Twilio (an update with an empty
// Body).
func (c *Client) RedactMessage(ctx context.Context, accountSID, sid string) error {
	const op = "redact twilio message"
	if !isAccountSID(accountSID) {
		return notFound(op, "an account SID")
	}
	if !isMessageSID(sid) {
		return notFound(op, "a message SID")
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	m, err := svc.UpdateMessage(sid, (&api.UpdateMessageParams{}).SetPathAccountSid(accountSID).SetBody(""))
	if err != nil {
		return ex.failMessaging(op, err)
	}
	if m.Body != nil && *m.Body != "" {
		return fmt.Errorf("%s: %w: Twilio answered with the body still there", op, tenants.ErrUpstreamUnavailable)
	}
	return nil
}

// DeleteMessage deletes a message at Twilio; one Twilio does not know
// (404) is deleted. Twilio refuses to delete a message whose status is not
// final (code messages.CodeMessageNotFinished).
func (c *Client) DeleteMessage(ctx context.Context, accountSID, sid string) error {
	const op = "delete twilio message"
	if !isAccountSID(accountSID) {
		return notFound(op, "an account SID")
	}
	if !isMessageSID(sid) {
		return notFound(op, "a message SID")
	}
	svc, ex := c.begin(ctx)
	defer ex.finish()
	err := svc.DeleteMessage(sid, (&api.DeleteMessageParams{}).SetPathAccountSid(accountSID))
	return ex.goneIsDone(op, err)
}

// goneIsDone classifies the outcome of a deletion: 404 means the resource
// is gone, which is what was asked.
func (e *exchange) goneIsDone(op string, err error) error {
	if err == nil {
		return nil
	}
	failed := e.failMessaging(op, err)
	if errors.Is(failed, messages.ErrTwilioNotFound) {
		return nil
	}
	return failed
}

// failMessaging translates a twilio-go error into the vocabulary of the
// messages.Twilio port. Like fail, its text names the HTTP status and
// Twilio's code and message (URLs and paths taken out), never a URL, a
// header or a body, so it cannot carry a credential.
func (e *exchange) failMessaging(op string, err error) error {
	if status, code, message, ok := restError(err); ok {
		return classifyMessaging(op, status, code, message, e.lastStatus())
	}
	if failed := e.transportFail(op, err); failed != nil {
		return failed
	}
	// twilio-go could not read the answer: not Twilio's, whatever its
	// status (a proxy's error page, say).
	status := e.lastStatus()
	if status == http.StatusTooManyRequests {
		return fmt.Errorf("%s: %w: %w: unreadable answer (HTTP %d)", op, messages.ErrTwilioRateLimited, tenants.ErrUpstreamUnavailable, status)
	}
	return fmt.Errorf("%s: %w: unreadable answer (HTTP %d)", op, tenants.ErrUpstreamUnavailable, status)
}

// classifyMessaging maps one Twilio error body for the messages.Twilio
// port. status falls back to the HTTP status seen when the body left it
// out.
func classifyMessaging(op string, status, code int, message string, seen int) error {
	if status == 0 {
		status = seen
	}
	switch {
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w: %w (Twilio status %d, error %d)", op, messages.ErrTwilioRateLimited, tenants.ErrUpstreamUnavailable, status, code)
	case status >= 500 || status < 400:
		return fmt.Errorf("%s: %w (Twilio status %d, error %d)", op, tenants.ErrUpstreamUnavailable, status, code)
	case status == http.StatusNotFound:
		return fmt.Errorf("%s: %w (Twilio error %d)", op, messages.ErrTwilioNotFound, code)
	default:
		return fmt.Errorf("%s: %w", op, &messages.TwilioError{Status: status, Code: code, Message: scrub(message)})
	}
}

// scrub takes URLs and paths out of Twilio's message (one may name a
// resource path or echo a callback URL and its query) and bounds its
// length.
func scrub(message string) string {
	words := strings.Fields(message)
	for i, w := range words {
		if strings.Contains(w, "://") || strings.HasPrefix(strings.TrimLeft(w, `"'(`), "/") {
			words[i] = "[url]"
		}
	}
	s := strings.Join(words, " ")
	if len(s) > maxRefusalText {
		cut := maxRefusalText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func toNumber(n *api.ApiV2010IncomingPhoneNumber) messages.Number {
	var out messages.Number
	if n.Sid != nil {
		out.SID = *n.Sid
	}
	if n.PhoneNumber != nil {
		out.PhoneNumber = *n.PhoneNumber
	}
	if n.Capabilities != nil {
		out.SMS, out.MMS = n.Capabilities.Sms, n.Capabilities.Mms
	}
	return out
}

// checkedMessage converts an answer that must be one message; one without
// a message SID is not Twilio's.
func checkedMessage(op string, m *api.ApiV2010Message) (messages.TwilioMessage, error) {
	out := toMessage(m)
	if !isMessageSID(out.SID) {
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w: the answer lacks the message's sid", op, tenants.ErrUpstreamUnavailable)
	}
	return out, nil
}

func toMessage(m *api.ApiV2010Message) messages.TwilioMessage {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out := messages.TwilioMessage{
		SID:                 str(m.Sid),
		AccountSID:          str(m.AccountSid),
		From:                str(m.From),
		To:                  str(m.To),
		Body:                str(m.Body),
		Status:              str(m.Status),
		ErrorMessage:        str(m.ErrorMessage),
		DateCreated:         twilioTime(m.DateCreated),
		DateSent:            twilioTime(m.DateSent),
		Direction:           str(m.Direction),
		MessagingServiceSID: str(m.MessagingServiceSid),
	}
	if m.ErrorCode != nil {
		out.ErrorCode = *m.ErrorCode
	}
	// Twilio writes num_segments as a string.
	if n, err := strconv.Atoi(str(m.NumSegments)); err == nil && n > 0 {
		out.Segments = n
	}
	return out
}

// twilioTime reads one of Twilio's dates (RFC 1123 with a numeric zone);
// the zero time when absent or unreadable.
func twilioTime(s *string) time.Time {
	if s == nil || *s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC1123Z, *s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
