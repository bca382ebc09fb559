package twilio_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
)

var (
	numberSIDShape  = regexp.MustCompile(`^PN[0-9a-f]{32}$`)
	messageSIDShape = regexp.MustCompile(`^SM[0-9a-f]{32}$`)
	fictionalShape  = regexp.MustCompile(`^\+1[2-9][0-9]{2}55501[0-9]{2}$`)
)

// newSandbox returns a sandbox closed when the test ends.
func newSandbox(t *testing.T, delay time.Duration) *twilio.Sandbox {
	t.Helper()
	s := twilio.NewSandboxWith(twilio.SandboxConfig{DeliveryDelay: delay})
	t.Cleanup(s.Close)
	return s
}

// subaccount creates a sub-account in s.
func subaccount(t *testing.T, s *twilio.Sandbox, name string) tenants.Subaccount {
	t.Helper()
	a, err := s.CreateSubaccount(context.Background(), "switchboard customer "+name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wantRefusal fails unless err is a *messages.TwilioError with status 400
// and code.
func wantRefusal(t *testing.T, what string, err error, code int) {
	t.Helper()
	var te *messages.TwilioError
	if !errors.As(err, &te) || te.Status != http.StatusBadRequest || te.Code != code {
		t.Fatalf("%s: %v, want a 400 refusal with code %d", what, err, code)
	}
}

// validNumber fails unless number is a valid number per phonenumbers.
func validNumber(t *testing.T, number, region string) {
	t.Helper()
	n, err := phonenumbers.Parse(number, "")
	if err != nil || !phonenumbers.IsValidNumberForRegion(n, region) {
		t.Fatalf("%s is not a valid %s number (%v)", number, region, err)
	}
}

func TestSandboxAuthTokens(t *testing.T) {
	secret := []byte("a sandbox secret")
	s1 := twilio.NewSandboxWith(twilio.SandboxConfig{Secret: secret})
	s2 := twilio.NewSandboxWith(twilio.SandboxConfig{Secret: secret})
	other := twilio.NewSandboxWith(twilio.SandboxConfig{Secret: []byte("another secret")})
	a := subaccount(t, s1, "tokens")
	if a.AuthToken != s1.AuthToken(a.SID) || !tokenShape.MatchString(a.AuthToken) {
		t.Fatalf("created a token of %d chars that AuthToken does not give", len(a.AuthToken))
	}
	// A restart with the same secret signs with the same token...
	if b := subaccount(t, s2, "tokens"); b.SID != a.SID || b.AuthToken != a.AuthToken {
		t.Fatal("the same secret gave another token")
	}
	// ...another secret does not.
	if other.AuthToken(a.SID) == a.AuthToken {
		t.Fatal("another secret gave the same token")
	}
	if got := s1.AuthToken("AC123"); got != "" {
		t.Fatalf("a token for a string that is not an account SID: %d chars", len(got))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v %+v %#v %s", s1, s1, s1, s1)
	if strings.Contains(b.String(), a.AuthToken) || strings.Contains(b.String(), string(secret)) {
		t.Fatalf("printed: %s", b.String())
	}
}

func TestSandboxBuysNumbers(t *testing.T) {
	ctx := context.Background()
	s := newSandbox(t, 0)
	a, b := subaccount(t, s, "numbers a"), subaccount(t, s, "numbers b")
	const hook = "https://switchboard.example.com/v1/webhooks/twilio/inbound"

	seen := map[string]bool{}
	for range 20 {
		n, err := s.BuyNumber(ctx, a.SID, "+15005550006", hook)
		if err != nil {
			t.Fatal(err)
		}
		if !fictionalShape.MatchString(n.PhoneNumber) || !numberSIDShape.MatchString(n.SID) || !n.SMS || !n.MMS {
			t.Fatalf("bought %+v", n)
		}
		validNumber(t, n.PhoneNumber, "US")
		if seen[n.PhoneNumber] || seen[n.SID] {
			t.Fatalf("%s bought twice", n.PhoneNumber)
		}
		seen[n.PhoneNumber], seen[n.SID] = true, true
		if got, err := s.FindNumber(ctx, a.SID, n.PhoneNumber); err != nil || got != n {
			t.Fatalf("find the bought number: %+v, %v", got, err)
		}
	}

	_, err := s.BuyNumber(ctx, a.SID, "+15005550000", hook)
	wantRefusal(t, "buy +15005550000", err, messages.CodeNumberUnavailable)
	for _, bad := range []string{"+15005550001", "", "4155550123", "+1 415 555 0123", "+0123", "+1234567890123456"} {
		_, err := s.BuyNumber(ctx, a.SID, bad, hook)
		wantRefusal(t, fmt.Sprintf("buy %q", bad), err, messages.CodeNumberInvalid)
	}

	// Any other number is bought as itself, once.
	mine, err := s.BuyNumber(ctx, a.SID, "+14155550123", hook)
	if err != nil || mine.PhoneNumber != "+14155550123" || !numberSIDShape.MatchString(mine.SID) {
		t.Fatalf("buy a plain number: %+v, %v", mine, err)
	}
	if again, err := s.BuyNumber(ctx, a.SID, "+14155550123", hook+"?v=2"); err != nil || again != mine {
		t.Fatalf("buy it again: %+v, %v, want the same number", again, err)
	}
	_, err = s.BuyNumber(ctx, b.SID, "+14155550123", hook)
	wantRefusal(t, "buy another account's number", err, messages.CodeNumberUnavailable)
	if _, err := s.FindNumber(ctx, b.SID, "+14155550123"); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("another account found the number: %v", err)
	}

	// Release: another account's release changes nothing, an unknown
	// number is released already.
	if err := s.ReleaseNumber(ctx, b.SID, mine.SID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindNumber(ctx, a.SID, mine.PhoneNumber); err != nil {
		t.Fatalf("another account released the number: %v", err)
	}
	for range 2 {
		if err := s.ReleaseNumber(ctx, a.SID, mine.SID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.FindNumber(ctx, a.SID, mine.PhoneNumber); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("find a released number: %v", err)
	}
	if got, err := s.BuyNumber(ctx, b.SID, "+14155550123", hook); err != nil || got.SID == mine.SID {
		t.Fatalf("buy a released number: %+v, %v, want a new SID", got, err)
	}
}

func TestSandboxSearchesNumbers(t *testing.T) {
	ctx := context.Background()
	s := newSandbox(t, 0)
	a := subaccount(t, s, "search")
	for _, tc := range []struct{ country, areaCode, prefix string }{
		{"US", "", "+1"}, {"US", "415", "+1415"}, {"CA", "", "+1"}, {"CA", "604", "+1604"}, {"us", "201", "+1201"},
	} {
		n, err := s.SearchNumber(ctx, a.SID, tc.country, tc.areaCode)
		if err != nil {
			t.Fatalf("search %s %q: %v", tc.country, tc.areaCode, err)
		}
		if !fictionalShape.MatchString(n) || !strings.HasPrefix(n, tc.prefix) {
			t.Fatalf("search %s %q: %s", tc.country, tc.areaCode, n)
		}
		validNumber(t, n, strings.ToUpper(tc.country))
	}
	for _, tc := range []struct{ country, areaCode string }{
		{"GB", ""}, {"", ""}, {"US", "211"}, {"US", "555"}, {"US", "41"}, {"US", "4155"}, {"US", "-41"}, {"US", "abc"}, {"CA", "415"},
	} {
		_, err := s.SearchNumber(ctx, a.SID, tc.country, tc.areaCode)
		wantRefusal(t, fmt.Sprintf("search %s %q", tc.country, tc.areaCode), err, messages.CodeNoNumbersInArea)
	}

	// An area code has 100 sandbox numbers: buy them all, and there are none left.
	for i := range 100 {
		n, err := s.SearchNumber(ctx, a.SID, "US", "212")
		if err != nil {
			t.Fatalf("search %d: %v", i, err)
		}
		if _, err := s.BuyNumber(ctx, a.SID, n, ""); err != nil {
			t.Fatalf("buy the %d-th found number: %v", i, err)
		}
	}
	_, err := s.SearchNumber(ctx, a.SID, "US", "212")
	wantRefusal(t, "search a full area code", err, messages.CodeNoNumbersInArea)
}

func TestSandboxRefusesWhatTestCredentialsRefuse(t *testing.T) {
	ctx := context.Background()
	s := newSandbox(t, 0)
	a, b := subaccount(t, s, "refusals a"), subaccount(t, s, "refusals b")
	from, err := s.BuyNumber(ctx, a.SID, "+15005550006", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		send messages.Send
		code int
	}{
		{"invalid To", messages.Send{From: from.PhoneNumber, To: "+15005550001", Body: "hi"}, messages.CodeInvalidTo},
		{"cannot route", messages.Send{From: from.PhoneNumber, To: "+15005550002", Body: "hi"}, messages.CodeCannotRoute},
		{"no international", messages.Send{From: from.PhoneNumber, To: "+15005550003", Body: "hi"}, messages.CodeNoInternational},
		{"opted out", messages.Send{From: from.PhoneNumber, To: "+15005550004", Body: "hi"}, messages.CodeOptedOut},
		{"not mobile", messages.Send{From: from.PhoneNumber, To: "+15005550009", Body: "hi"}, messages.CodeNotMobile},
		{"To not E.164", messages.Send{From: from.PhoneNumber, To: "4155550100", Body: "hi"}, messages.CodeInvalidTo},
		{"From not E.164", messages.Send{From: "switchboard", To: "+14155550100", Body: "hi"}, messages.CodeFromNotYours},
		{"no body", messages.Send{From: from.PhoneNumber, To: "+14155550100"}, 21602},
		{"body too long", messages.Send{From: from.PhoneNumber, To: "+14155550100", Body: strings.Repeat("é", 1601)}, 21617},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateMessage(ctx, a.SID, tc.send)
			wantRefusal(t, "send", err, tc.code)
			if strings.Contains(err.Error(), tc.send.To) || strings.Contains(err.Error(), tc.send.From) {
				t.Fatalf("the error names a number: %v", err)
			}
		})
	}
	_, err = s.CreateMessage(ctx, b.SID, messages.Send{From: from.PhoneNumber, To: "+14155550100", Body: "hi"})
	wantRefusal(t, "send from another account's number", err, messages.CodeFromNotYours)
	if got := s.SandboxMessages(a.SID); len(got) != 0 {
		t.Fatalf("refused sends stored %d messages", len(got))
	}
	// Media without a body is a message.
	if _, err := s.CreateMessage(ctx, a.SID, messages.Send{From: from.PhoneNumber, To: "+14155550100", MediaURLs: []string{"https://x.example/a.png"}}); err != nil {
		t.Fatal(err)
	}
}

func TestSandboxRefusesWhatIsNotAnAccountSID(t *testing.T) {
	ctx := context.Background()
	s := newSandbox(t, 0)
	for _, sid := range []string{"", "AC123", "../Accounts", "AC" + strings.Repeat("A", 32), "AC" + strings.Repeat("1", 32) + "/Messages"} {
		errs := map[string]error{}
		_, errs["search"] = s.SearchNumber(ctx, sid, "US", "")
		_, errs["buy"] = s.BuyNumber(ctx, sid, "+15005550006", "")
		_, errs["find"] = s.FindNumber(ctx, sid, "+14155550100")
		errs["release"] = s.ReleaseNumber(ctx, sid, "PN"+strings.Repeat("1", 32))
		_, errs["create"] = s.CreateMessage(ctx, sid, messages.Send{From: "+14155550100", To: "+14155550101", Body: "hi"})
		_, errs["fetch"] = s.FetchMessage(ctx, sid, "SM"+strings.Repeat("1", 32))
		_, errs["list"] = listAll(ctx, s, sid, messages.ListFilter{})
		errs["redact"] = s.RedactMessage(ctx, sid, "SM"+strings.Repeat("1", 32))
		errs["delete"] = s.DeleteMessage(ctx, sid, "SM"+strings.Repeat("1", 32))
		for op, err := range errs {
			if !errors.Is(err, messages.ErrTwilioNotFound) {
				t.Fatalf("%s with SID %q: %v, want ErrTwilioNotFound", op, sid, err)
			}
		}
	}
}

// callback is one status callback a test server received.
type callback struct {
	url    string
	params map[string]string
	sig    string
	at     time.Time
}

// callbackServer records the callbacks it receives; fail answers 500 to
// the first fail of them.
func callbackServer(t *testing.T, fail int) (srv *httptest.Server, got <-chan callback, attempts func() int) {
	t.Helper()
	ch := make(chan callback, 64)
	var mu sync.Mutex
	n := 0
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		failing := n <= fail
		mu.Unlock()
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("a callback that is not a form POST: %s %s (%v)", r.Method, r.Header.Get("Content-Type"), err)
		}
		if failing {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		params := map[string]string{}
		for k := range r.PostForm {
			params[k] = r.PostForm.Get(k)
		}
		ch <- callback{url: "http://" + r.Host + r.URL.RequestURI(), params: params, sig: r.Header.Get("X-Twilio-Signature"), at: time.Now()}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, "<Response/>")
	}))
	t.Cleanup(srv.Close)
	return srv, ch, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// next returns the next callback, failing after timeout.
func next(t *testing.T, got <-chan callback, timeout time.Duration) callback {
	t.Helper()
	select {
	case c := <-got:
		return c
	case <-time.After(timeout):
		t.Fatal("no callback")
		return callback{}
	}
}

// waitStatus waits until the only message of account has status.
func waitStatus(t *testing.T, s *twilio.Sandbox, account, status string) messages.TwilioMessage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms := s.SandboxMessages(account)
		if len(ms) == 1 && ms[0].Status == status {
			return ms[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages %+v, want one %s", ms, status)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSandboxSendsAndCallsBack(t *testing.T) {
	ctx := context.Background()
	const delay = 300 * time.Millisecond
	srv, got, _ := callbackServer(t, 0)
	s := newSandbox(t, delay)
	a := subaccount(t, s, "send")
	from, err := s.BuyNumber(ctx, a.SID, "+15005550006", "")
	if err != nil {
		t.Fatal(err)
	}
	hook := srv.URL + "/v1/webhooks/twilio/status?mid=abc"
	body := strings.Repeat("x", 161)
	before := time.Now().UTC().Truncate(time.Second)
	m, err := s.CreateMessage(ctx, a.SID, messages.Send{From: from.PhoneNumber, To: "+14155550100", Body: body, StatusCallback: hook})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	if !messageSIDShape.MatchString(m.SID) || m.AccountSID != a.SID || m.From != from.PhoneNumber || m.To != "+14155550100" ||
		m.Body != body || m.Status != "queued" || m.Segments != 2 || m.Direction != "outbound-api" ||
		m.DateCreated.Before(before) || m.DateCreated.After(time.Now()) || !m.DateSent.IsZero() || m.ErrorCode != 0 {
		t.Fatalf("created %+v", m)
	}

	var at []time.Time
	for _, status := range []string{"sent", "delivered"} {
		c := next(t, got, 5*time.Second)
		want := map[string]string{
			"MessageSid": m.SID, "SmsSid": m.SID, "SmsStatus": status, "MessageStatus": status,
			"AccountSid": a.SID, "From": m.From, "To": m.To, "ApiVersion": "2010-04-01",
		}
		if fmt.Sprint(c.params) != fmt.Sprint(want) {
			t.Fatalf("%s callback %v, want %v", status, c.params, want)
		}
		if c.url != hook {
			t.Fatalf("%s callback reached %s, want %s", status, c.url, hook)
		}
		if !twilio.ValidSignature(s.AuthToken(a.SID), hook, c.params, c.sig) || !twilio.ValidSignature(a.AuthToken, hook, c.params, c.sig) {
			t.Fatalf("%s callback: the signature does not verify", status)
		}
		if twilio.ValidSignature(a.AuthToken, strings.TrimSuffix(hook, "?mid=abc"), c.params, c.sig) {
			t.Fatalf("%s callback: the signature leaves out the query string", status)
		}
		at = append(at, c.at)
	}
	if d := at[0].Sub(created); d > delay {
		t.Fatalf("sent %s after the creation, want right away", d)
	}
	if d := at[1].Sub(at[0]); d < delay-50*time.Millisecond || d > delay+500*time.Millisecond {
		t.Fatalf("delivered %s after sent, want about %s", d, delay)
	}
	final := waitStatus(t, s, a.SID, "delivered")
	if final.DateSent.IsZero() || final.DateSent.Before(before) {
		t.Fatalf("delivered with DateSent %s", final.DateSent)
	}
	if fetched, err := s.FetchMessage(ctx, a.SID, m.SID); err != nil || fetched != final {
		t.Fatalf("fetched %+v, %v, want %+v", fetched, err, final)
	}
	select {
	case c := <-got:
		t.Fatalf("a third callback: %v", c.params)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestSandboxRetriesAFailedCallback(t *testing.T) {
	ctx := context.Background()
	srv, got, attempts := callbackServer(t, 2)
	s := newSandbox(t, time.Hour)
	a := subaccount(t, s, "retry")
	if _, err := s.CreateMessage(ctx, a.SID, messages.Send{From: "+14155550199", To: "+14155550100", Body: "hi", StatusCallback: srv.URL + "/status"}); err != nil {
		t.Fatal(err)
	}
	if c := next(t, got, 5*time.Second); c.params["MessageStatus"] != "sent" {
		t.Fatalf("callback %v", c.params)
	}
	if n := attempts(); n != 3 {
		t.Fatalf("%d attempts, want 2 failures and a success", n)
	}

	// A callback that never gets through is given up after a few tries; the
	// message moves on regardless.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	b := subaccount(t, s, "retry down")
	start := time.Now()
	if _, err := s.CreateMessage(ctx, b.SID, messages.Send{From: "+14155550198", To: "+14155550100", Body: "hi", StatusCallback: down.URL + "/status"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, b.SID, "sent")
	if time.Since(start) > time.Second {
		t.Fatal("the status waited for the callback")
	}
}

func TestSandboxMessagesWithoutACallbackAreDeliveredToo(t *testing.T) {
	s := newSandbox(t, 20*time.Millisecond)
	a := subaccount(t, s, "no callback")
	if _, err := s.CreateMessage(context.Background(), a.SID, messages.Send{From: "+14155550199", To: "+14155550100", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, a.SID, "delivered")
}

func TestSandboxListsRedactsAndDeletes(t *testing.T) {
	ctx := context.Background()
	s := newSandbox(t, 20*time.Millisecond)
	a, b := subaccount(t, s, "list a"), subaccount(t, s, "list b")
	send := func(account, from, to string) messages.TwilioMessage {
		t.Helper()
		m, err := s.CreateMessage(ctx, account, messages.Send{From: from, To: to, Body: "hello " + to})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := send(a.SID, "+14155550199", "+14155550100")
	m2 := send(a.SID, "+14155550199", "+14155550101")
	m3 := send(a.SID, "+14155550198", "+14155550100")
	send(b.SID, "+14155550197", "+14155550100")

	sids := func(ms []messages.TwilioMessage, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.SID)
		}
		return strings.Join(out, ",")
	}
	today := time.Now().UTC()
	for _, tc := range []struct {
		name string
		f    messages.ListFilter
		want []string
	}{
		{"all, newest first", messages.ListFilter{}, []string{m3.SID, m2.SID, m1.SID}},
		{"to", messages.ListFilter{To: "+14155550100"}, []string{m3.SID, m1.SID}},
		{"from", messages.ListFilter{From: "+14155550199"}, []string{m2.SID, m1.SID}},
		{"to and from", messages.ListFilter{To: "+14155550100", From: "+14155550199"}, []string{m1.SID}},
		{"a prefix is not a match", messages.ListFilter{To: "+1415555010"}, nil},
		{"sent today, later in the day", messages.ListFilter{SentAfter: time.Date(today.Year(), today.Month(), today.Day(), 23, 59, 59, 0, time.UTC)}, []string{m3.SID, m2.SID, m1.SID}},
		{"sent since yesterday", messages.ListFilter{SentAfter: today.AddDate(0, 0, -1)}, []string{m3.SID, m2.SID, m1.SID}},
		{"sent since tomorrow", messages.ListFilter{SentAfter: today.AddDate(0, 0, 1)}, nil},
	} {
		if got, want := sids(listAll(ctx, s, a.SID, tc.f)), strings.Join(tc.want, ","); got != want {
			t.Fatalf("%s: listed %s, want %s", tc.name, got, want)
		}
	}

	// Fetch, redact and delete see only the account's own messages.
	if _, err := s.FetchMessage(ctx, b.SID, m1.SID); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("another account fetched the message: %v", err)
	}
	if err := s.RedactMessage(ctx, b.SID, m1.SID); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("another account redacted the message: %v", err)
	}
	if _, err := s.FetchMessage(ctx, a.SID, "SM"+strings.Repeat("0", 32)); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("fetch an unknown message: %v", err)
	}
	if err := s.RedactMessage(ctx, a.SID, "SM"+strings.Repeat("0", 32)); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("redact an unknown message: %v", err)
	}
	if err := s.DeleteMessage(ctx, a.SID, "SM"+strings.Repeat("0", 32)); err != nil {
		t.Fatalf("delete an unknown message: %v", err)
	}

	if err := s.RedactMessage(ctx, a.SID, m1.SID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FetchMessage(ctx, a.SID, m1.SID); err != nil || got.Body != "" || got.To != m1.To {
		t.Fatalf("after redaction: %+v, %v", got, err)
	}
	for _, m := range s.SandboxMessages(a.SID) {
		if m.SID == m1.SID && m.Body != "" {
			t.Fatal("the test hook still has the body")
		}
	}

	// Delivered messages can be deleted, once and again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := s.FetchMessage(ctx, a.SID, m1.SID)
		if err != nil {
			t.Fatal(err)
		}
		if m.Status == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s", m.Status)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := s.DeleteMessage(ctx, b.SID, m1.SID); err != nil {
		t.Fatalf("another account's delete: %v", err)
	}
	for range 2 {
		if err := s.DeleteMessage(ctx, a.SID, m1.SID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.FetchMessage(ctx, a.SID, m1.SID); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("fetch a deleted message: %v", err)
	}
	if got := sids(listAll(ctx, s, a.SID, messages.ListFilter{})); got != m3.SID+","+m2.SID {
		t.Fatalf("listed %s after the delete", got)
	}
}

func TestSandboxRefusesToDeleteAMessageNotFinal(t *testing.T) {
	ctx := context.Background()
	s := newSandbox(t, time.Hour)
	a := subaccount(t, s, "not final")
	m, err := s.CreateMessage(ctx, a.SID, messages.Send{From: "+14155550199", To: "+14155550100", Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.DeleteMessage(ctx, a.SID, m.SID)
	wantRefusal(t, "delete a queued message", err, messages.CodeMessageNotFinished)
	waitStatus(t, s, a.SID, "sent")
	err = s.DeleteMessage(ctx, a.SID, m.SID)
	wantRefusal(t, "delete a sent message", err, messages.CodeMessageNotFinished)
	if _, err := s.FetchMessage(ctx, a.SID, m.SID); err != nil {
		t.Fatalf("a refused delete deleted: %v", err)
	}
}

func TestSandboxCloseStopsCallbacks(t *testing.T) {
	ctx := context.Background()
	const delay = 500 * time.Millisecond
	srv, got, attempts := callbackServer(t, 0)
	s := twilio.NewSandboxWith(twilio.SandboxConfig{DeliveryDelay: delay})
	a := subaccount(t, s, "close")
	if _, err := s.CreateMessage(ctx, a.SID, messages.Send{From: "+14155550199", To: "+14155550100", Body: "hi", StatusCallback: srv.URL + "/status"}); err != nil {
		t.Fatal(err)
	}
	next(t, got, 5*time.Second) // sent

	// A callback stuck at a server that does not answer is cancelled too.
	stuck := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(stuck)
	b := subaccount(t, s, "close hung")
	if _, err := s.CreateMessage(ctx, b.SID, messages.Send{From: "+14155550198", To: "+14155550100", Body: "hi", StatusCallback: hung.URL + "/status"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, b.SID, "sent")

	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
	s.Close() // again: nothing to do
	n := attempts()
	time.Sleep(delay + 100*time.Millisecond)
	select {
	case c := <-got:
		t.Fatalf("a callback after Close: %v", c.params)
	default:
	}
	if attempts() != n {
		t.Fatal("the sandbox posted after Close")
	}
	if ms := s.SandboxMessages(a.SID); len(ms) != 1 || ms[0].Status != "sent" {
		t.Fatalf("after Close: %+v, want one message left sent", ms)
	}
	_, err := s.CreateMessage(ctx, a.SID, messages.Send{From: "+14155550199", To: "+14155550100", Body: "hi"})
	if !errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("send after Close: %v, want ErrUpstreamUnavailable", err)
	}
}

func TestSandboxMessagingIsSafeForConcurrentUse(t *testing.T) {
	ctx := context.Background()
	srv, got, _ := callbackServer(t, 0)
	s := newSandbox(t, 10*time.Millisecond)
	a := subaccount(t, s, "concurrent")
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			num, err := s.BuyNumber(ctx, a.SID, "+15005550006", "")
			if err != nil {
				t.Error(err)
				return
			}
			m, err := s.CreateMessage(ctx, a.SID, messages.Send{From: num.PhoneNumber, To: fmt.Sprintf("+141555501%02d", i), Body: "hi", StatusCallback: srv.URL + "/status"})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := listAll(ctx, s, a.SID, messages.ListFilter{To: m.To}); err != nil {
				t.Error(err)
			}
			if err := s.RedactMessage(ctx, a.SID, m.SID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for range 2 * n {
		next(t, got, 5*time.Second)
	}
}

// lister is the port's ListMessages.
type lister interface {
	ListMessages(ctx context.Context, accountSID string, f messages.ListFilter, each func(messages.TwilioMessage) bool) error
}

// listAll collects every message ListMessages hands over.
func listAll(ctx context.Context, l lister, accountSID string, f messages.ListFilter) ([]messages.TwilioMessage, error) {
	var out []messages.TwilioMessage
	err := l.ListMessages(ctx, accountSID, f, func(m messages.TwilioMessage) bool {
		out = append(out, m)
		return true
	})
	return out, err
}
