package twilio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
)

var _ messages.Twilio = (*Sandbox)(nil)

// Twilio's magic numbers for test credentials, as the sandbox honours them.
const (
	// SandboxNumberAvailable bought (or searched) gives a new sandbox number.
	SandboxNumberAvailable = "+15005550006"
	// SandboxNumberUnavailable bought is refused with 21422.
	SandboxNumberUnavailable = "+15005550000"
	// SandboxNumberInvalid bought is refused with 21421; sent to, 21211.
	SandboxNumberInvalid = "+15005550001"
	// SandboxToCannotRoute sent to is refused with 21612.
	SandboxToCannotRoute = "+15005550002"
	// SandboxToNoInternational sent to is refused with 21408.
	SandboxToNoInternational = "+15005550003"
	// SandboxToOptedOut sent to is refused with 21610.
	SandboxToOptedOut = "+15005550004"
	// SandboxToNotMobile sent to is refused with 21614.
	SandboxToNotMobile = "+15005550009"
)

// Twilio error codes the sandbox answers that Switchboard does not act on.
const (
	codeBodyRequired = 21602 // Message body is required
	codeBodyTooLong  = 21617 // the concatenated message body exceeds 1600 characters
)

// maxBodyChars is the longest body Twilio accepts.
const maxBodyChars = 1600

// segmentChars is how many characters the sandbox counts per segment.
const segmentChars = 160

// Callback retries: a callback that fails is tried callbackAttempts times
// in all, waiting callbackBackoff, then twice as long, … between tries.
const (
	callbackAttempts = 4
	callbackBackoff  = 100 * time.Millisecond
	// sentAfter is how long after its creation a message goes "sent".
	sentAfter = 5 * time.Millisecond
)

// Twilio message statuses the sandbox uses or refuses to delete.
const (
	statusQueued    = "queued"
	statusSent      = "sent"
	statusDelivered = "delivered"
)

// e164 is the shape of an E.164 number.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// sandboxNumber is a number a sandbox sub-account holds.
type sandboxNumber struct {
	account string
	number  messages.Number
	smsURL  string // inbound webhook, kept as Twilio would
}

// refusal is a *messages.TwilioError with Twilio's HTTP status 400.
func refusal(code int, text string) error {
	return &messages.TwilioError{Status: http.StatusBadRequest, Code: code, Message: text}
}

// checkAccount refuses a string that is not an account SID the way Twilio
// answers a path it does not know: not found.
func checkAccount(op, accountSID string) error {
	if !isAccountSID(accountSID) {
		return fmt.Errorf("%s: %w: not an account SID", op, messages.ErrTwilioNotFound)
	}
	return nil
}

// randomSID returns prefix followed by 32 random lower-case hex digits.
func randomSID(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return prefix + hex.EncodeToString(b)
}

// areaCodes are, per country the sandbox has numbers in, the area codes
// (201…989, no N11) whose fictional numbers NXX-555-0100…0199
// phonenumbers takes as valid numbers of that country.
var areaCodes = sync.OnceValue(func() map[string][]int {
	out := map[string][]int{}
	for _, region := range []string{"US", "CA"} {
		for nxx := 201; nxx <= 989; nxx++ {
			if nxx/10%10 == 1 && nxx%10 == 1 {
				continue // N11: service codes, never area codes
			}
			if validFor(fictional(nxx, 0), region) {
				out[region] = append(out[region], nxx)
			}
		}
	}
	return out
})

// fictional returns the fictional number +1 NXX 555-01nn.
func fictional(nxx, nn int) string { return fmt.Sprintf("+1%03d55501%02d", nxx, nn) }

// validFor reports whether phonenumbers takes e164Number as a valid number
// of region.
func validFor(e164Number, region string) bool {
	n, err := phonenumbers.Parse(e164Number, "")
	return err == nil && phonenumbers.IsValidNumberForRegion(n, region)
}

// freeNumberLocked returns a fictional number of country (US or CA), in
// areaCode if not empty, that no sandbox account holds, or a refusal with
// code 21452. s.mu must be held.
func (s *Sandbox) freeNumberLocked(country, areaCode string) (string, error) {
	none := refusal(messages.CodeNoNumbersInArea, "No phone numbers found in that area.")
	codes := areaCodes()[strings.ToUpper(country)]
	if areaCode != "" {
		nxx, err := strconv.Atoi(areaCode)
		if err != nil || len(areaCode) != 3 || !slices.Contains(codes, nxx) {
			return "", none
		}
		codes = []int{nxx}
	}
	if len(codes) == 0 {
		return "", none
	}
	// Random picks first; then, in one area code, every number in turn.
	for range 64 {
		if n := fictional(codes[mrand.IntN(len(codes))], mrand.IntN(100)); s.numbers[n] == nil {
			return n, nil
		}
	}
	if len(codes) == 1 {
		for nn := range 100 {
			if n := fictional(codes[0], nn); s.numbers[n] == nil {
				return n, nil
			}
		}
	}
	return "", none
}

// SearchNumber returns a fictional local number (NXX-555-01nn, valid for
// phonenumbers) of country that no sandbox account holds, in areaCode if
// not empty. The sandbox has numbers in the US and Canada only; another
// country, an area code that is not one of the country's, or an area code
// whose 100 numbers are all held is a refusal with code 21452. The number
// is not reserved: buy it.
func (s *Sandbox) SearchNumber(_ context.Context, accountSID, country, areaCode string) (string, error) {
	const op = "search sandbox number"
	if err := checkAccount(op, accountSID); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.freeNumberLocked(country, areaCode)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return n, nil
}

// BuyNumber buys phoneNumber into the sub-account, as Twilio's test
// credentials do and then some: +15005550006 gives a new fictional US
// number; +15005550000 is refused with 21422 (not available) and
// +15005550001 or anything not E.164 with 21421 (invalid); any other E.164
// number is bought as itself, unless another sandbox account holds it
// (21422). Buying a number the sub-account already holds returns it with
// smsURL as its new webhook.
func (s *Sandbox) BuyNumber(_ context.Context, accountSID, phoneNumber, smsURL string) (messages.Number, error) {
	const op = "buy sandbox number"
	if err := checkAccount(op, accountSID); err != nil {
		return messages.Number{}, err
	}
	switch {
	case phoneNumber == SandboxNumberUnavailable:
		return messages.Number{}, fmt.Errorf("%s: %w", op, refusal(messages.CodeNumberUnavailable, "PhoneNumber is not available."))
	case phoneNumber == SandboxNumberInvalid || !e164.MatchString(phoneNumber):
		return messages.Number{}, fmt.Errorf("%s: %w", op, refusal(messages.CodeNumberInvalid, "PhoneNumber is invalid."))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if phoneNumber == SandboxNumberAvailable {
		n, err := s.freeNumberLocked("US", "")
		if err != nil {
			return messages.Number{}, fmt.Errorf("%s: %w", op, err)
		}
		phoneNumber = n
	}
	if held := s.numbers[phoneNumber]; held != nil {
		if held.account != accountSID {
			return messages.Number{}, fmt.Errorf("%s: %w", op, refusal(messages.CodeNumberUnavailable, "PhoneNumber is not available."))
		}
		held.smsURL = smsURL
		return held.number, nil
	}
	n := &sandboxNumber{account: accountSID, smsURL: smsURL, number: messages.Number{
		SID: randomSID("PN"), PhoneNumber: phoneNumber, SMS: true, MMS: true,
	}}
	s.numbers[phoneNumber] = n
	return n.number, nil
}

// FindNumber returns the sub-account's number phoneNumber, or an error
// wrapping messages.ErrTwilioNotFound.
func (s *Sandbox) FindNumber(_ context.Context, accountSID, phoneNumber string) (messages.Number, error) {
	const op = "find sandbox number"
	if err := checkAccount(op, accountSID); err != nil {
		return messages.Number{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.numbers[phoneNumber]; n != nil && n.account == accountSID {
		return n.number, nil
	}
	return messages.Number{}, fmt.Errorf("%s: %w", op, messages.ErrTwilioNotFound)
}

// ReleaseNumber releases the sub-account's number numberSID; one it does
// not hold is released already.
func (s *Sandbox) ReleaseNumber(_ context.Context, accountSID, numberSID string) error {
	if err := checkAccount("release sandbox number", accountSID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for phone, n := range s.numbers {
		if n.account == accountSID && n.number.SID == numberSID {
			delete(s.numbers, phone)
		}
	}
	return nil
}

// sendRefusal is how Twilio refuses a message to a recipient.
type sendRefusal struct {
	code int
	text string
}

// sendRefusals are the recipients Twilio's test credentials refuse at
// creation.
var sendRefusals = map[string]sendRefusal{
	SandboxNumberInvalid:     {messages.CodeInvalidTo, "The 'To' number is not a valid phone number."},
	SandboxToCannotRoute:     {messages.CodeCannotRoute, "The 'To' phone number is not currently reachable via SMS."},
	SandboxToNoInternational: {messages.CodeNoInternational, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number."},
	SandboxToOptedOut:        {messages.CodeOptedOut, "Attempt to send to unsubscribed recipient."},
	SandboxToNotMobile:       {messages.CodeNotMobile, "'To' number is not a valid mobile number."},
}

// CreateMessage sends a message from the sub-account, as Twilio's test
// credentials do: To +15005550001 is refused with 21211, +15005550002 with
// 21612, +15005550003 with 21408, +15005550004 with 21610, +15005550009
// with 21614, anything not E.164 with 21211; a From that is not E.164 or
// that another sandbox account holds with 21606; no body and no media with
// 21602, a body over 1600 characters with 21617. Otherwise the message is
// stored "queued" and returned; a few milliseconds later it goes "sent",
// then "delivered" the delivery delay after that, and each change is posted,
// signed with the sub-account's AuthToken, to send.StatusCallback if set. A
// callback that fails is retried a few times, then dropped. After Close,
// every message is refused with an error wrapping
// tenants.ErrUpstreamUnavailable.
func (s *Sandbox) CreateMessage(_ context.Context, accountSID string, send messages.Send) (messages.TwilioMessage, error) {
	const op = "create sandbox message"
	if err := checkAccount(op, accountSID); err != nil {
		return messages.TwilioMessage{}, err
	}
	if r, ok := sendRefusals[send.To]; ok {
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w", op, refusal(r.code, r.text))
	}
	chars := utf8.RuneCountInString(send.Body)
	switch {
	case !e164.MatchString(send.To):
		r := sendRefusals[SandboxNumberInvalid]
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w", op, refusal(r.code, r.text))
	case send.Body == "" && len(send.MediaURLs) == 0:
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w", op, refusal(codeBodyRequired, "Message body is required."))
	case chars > maxBodyChars:
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w", op, refusal(codeBodyTooLong, "The concatenated message body exceeds the 1600 character limit."))
	}
	notYours := refusal(messages.CodeFromNotYours, "The 'From' number is not a valid, SMS-capable inbound phone number or short code for your account.")
	if !e164.MatchString(send.From) {
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w", op, notYours)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return messages.TwilioMessage{}, fmt.Errorf("%s: the sandbox is closed: %w", op, tenants.ErrUpstreamUnavailable)
	}
	if held := s.numbers[send.From]; held != nil && held.account != accountSID {
		return messages.TwilioMessage{}, fmt.Errorf("%s: %w", op, notYours)
	}
	m := &messages.TwilioMessage{
		SID: randomSID("SM"), AccountSID: accountSID,
		From: send.From, To: send.To, Body: send.Body,
		Status:      statusQueued,
		Segments:    max(1, (chars+segmentChars-1)/segmentChars),
		DateCreated: time.Now().UTC().Truncate(time.Second),
		Direction:   "outbound-api",
	}
	s.msgs[accountSID] = append(s.msgs[accountSID], m)
	s.msgBySID[m.SID] = m
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.deliver(m, send.StatusCallback)
	}()
	return *m, nil
}

// deliver moves m to "sent", then to "delivered", posting each change to
// callback if not empty. It stops when the sandbox is closed.
func (s *Sandbox) deliver(m *messages.TwilioMessage, callback string) {
	if !s.sleep(sentAfter) {
		return
	}
	sentAt := time.Now()
	s.advance(m, statusSent, sentAt, callback)
	if !s.sleep(time.Until(sentAt.Add(s.delay))) {
		return
	}
	s.advance(m, statusDelivered, time.Time{}, callback)
}

// sleep waits d, or less if the sandbox is closed first: then it reports
// false.
func (s *Sandbox) sleep(d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// advance sets m's status (and DateSent when sentAt is not zero) and posts
// the change to callback if not empty.
func (s *Sandbox) advance(m *messages.TwilioMessage, status string, sentAt time.Time, callback string) {
	s.mu.Lock()
	m.Status = status
	if !sentAt.IsZero() {
		m.DateSent = sentAt.UTC().Truncate(time.Second)
	}
	params := map[string]string{
		"MessageSid": m.SID, "SmsSid": m.SID,
		"SmsStatus": status, "MessageStatus": status,
		"AccountSid": m.AccountSID, "From": m.From, "To": m.To,
		"ApiVersion": "2010-04-01",
	}
	s.mu.Unlock()
	if callback != "" {
		s.post(callback, params)
	}
}

// post posts params to callback form-encoded and signed as Twilio does,
// trying again a few times with a growing pause if it fails (no answer, or
// one that is not 2xx), then giving up without a word: the sandbox has no
// logger, and a callback carries personal data.
func (s *Sandbox) post(callback string, params map[string]string) {
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	body := form.Encode()
	sig := Sign(s.AuthToken(params["AccountSid"]), callback, params)
	wait := callbackBackoff
	for attempt := range callbackAttempts {
		if attempt > 0 {
			if !s.sleep(wait) {
				return
			}
			wait *= 2
		}
		req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, callback, strings.NewReader(body))
		if err != nil {
			return // a URL no request can go to: no retry helps
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		req.Header.Set("User-Agent", "TwilioProxy/1.1")
		resp, err := s.http.Do(req)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // let the connection be reused
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return
		}
	}
}

// messageLocked returns the sub-account's message sid, or an error wrapping
// messages.ErrTwilioNotFound. s.mu must be held.
func (s *Sandbox) messageLocked(op, accountSID, sid string) (*messages.TwilioMessage, error) {
	m := s.msgBySID[sid]
	if m == nil || m.AccountSID != accountSID {
		return nil, fmt.Errorf("%s: %w", op, messages.ErrTwilioNotFound)
	}
	return m, nil
}

// FetchMessage returns the sub-account's message sid, or an error wrapping
// messages.ErrTwilioNotFound. An inbound message that a sandbox with the
// same secret made in another process (Inbound) is answered with its SID,
// account, status and direction only.
func (s *Sandbox) FetchMessage(_ context.Context, accountSID, sid string) (messages.TwilioMessage, error) {
	const op = "fetch sandbox message"
	if err := checkAccount(op, accountSID); err != nil {
		return messages.TwilioMessage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.messageLocked(op, accountSID, sid)
	if err != nil && s.madeInbound(accountSID, sid) {
		// Made by Inbound in another process: known, its content is not.
		return messages.TwilioMessage{SID: sid, AccountSID: accountSID, Status: "received", Direction: "inbound"}, nil
	}
	if err != nil {
		return messages.TwilioMessage{}, err
	}
	return *m, nil
}

// ListMessages hands each the sub-account's messages to f.To and from
// f.From (each when not empty, exactly), sent within the days (UTC) of
// f.SentAfter and f.SentBefore when they are set, newest first, until it
// returns false. Like Twilio's DateSent bounds it compares whole days; a
// message not sent yet counts by the day it was created, so that a send
// whose answer was lost is still found.
func (s *Sandbox) ListMessages(_ context.Context, accountSID string, f messages.ListFilter, each func(messages.TwilioMessage) bool) error {
	if err := checkAccount("list sandbox messages", accountSID); err != nil {
		return err
	}
	day := func(t time.Time) string { return t.UTC().Format(time.DateOnly) }
	var out []messages.TwilioMessage
	s.mu.Lock()
	ms := s.msgs[accountSID]
	for i := len(ms) - 1; i >= 0; i-- {
		m := *ms[i]
		if (f.To != "" && m.To != f.To) || (f.From != "" && m.From != f.From) {
			continue
		}
		sent := m.DateSent
		if sent.IsZero() {
			sent = m.DateCreated
		}
		if (!f.SentAfter.IsZero() && day(sent) < day(f.SentAfter)) || (!f.SentBefore.IsZero() && day(sent) > day(f.SentBefore)) {
			continue
		}
		out = append(out, m)
	}
	s.mu.Unlock()
	// each runs unlocked: it may call the sandbox again.
	for _, m := range out {
		if !each(m) {
			break
		}
	}
	return nil
}

// RedactMessage erases the body of the sub-account's message sid; an
// unknown sid is an error wrapping messages.ErrTwilioNotFound.
func (s *Sandbox) RedactMessage(_ context.Context, accountSID, sid string) error {
	const op = "redact sandbox message"
	if err := checkAccount(op, accountSID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.messageLocked(op, accountSID, sid)
	if err != nil {
		return err
	}
	m.Body = ""
	return nil
}

// DeleteMessage deletes the sub-account's message sid; one it does not
// hold is deleted already. A message whose status is not final (delivered,
// undelivered, failed, received, read, canceled) is refused with 20009:
// in the sandbox "sent" always goes on to "delivered", so it is not final.
func (s *Sandbox) DeleteMessage(_ context.Context, accountSID, sid string) error {
	const op = "delete sandbox message"
	if err := checkAccount(op, accountSID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.messageLocked(op, accountSID, sid)
	if err != nil {
		return nil
	}
	switch m.Status {
	case statusDelivered, "undelivered", "failed", "received", "read", "canceled":
	default:
		return fmt.Errorf("%s: %w", op, refusal(messages.CodeMessageNotFinished, "Cannot delete message because delivery has not been completed."))
	}
	delete(s.msgBySID, sid)
	s.msgs[accountSID] = slices.DeleteFunc(s.msgs[accountSID], func(o *messages.TwilioMessage) bool { return o == m })
	return nil
}

// SandboxMessages returns a copy of the messages the sub-account
// accountSID holds, oldest first: a test hook.
func (s *Sandbox) SandboxMessages(accountSID string) []messages.TwilioMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]messages.TwilioMessage, 0, len(s.msgs[accountSID]))
	for _, m := range s.msgs[accountSID] {
		out = append(out, *m)
	}
	return out
}
