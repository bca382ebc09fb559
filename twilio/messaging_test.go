package twilio_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

var (
	pnShape = regexp.MustCompile(`^PN[0-9a-f]{32}$`)
	smShape = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)
)

const inboundURL = "https://hooks.example.com/twilio/inbound?c=42"

// messagingDouble starts a double with one sub-account and a Client for it.
func messagingDouble(t *testing.T) (*twiliotest.Server, *twilio.Client, string) {
	t.Helper()
	srv, _ := double(t)
	c := newClient(t, srv.URL(), masterToken, 2*time.Second)
	sub, err := c.CreateSubaccount(context.Background(), "switchboard customer messaging")
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, sub.SID
}

// clientBuys buys number into account, failing the test otherwise.
func clientBuys(t *testing.T, c *twilio.Client, account, number string) messages.Number {
	t.Helper()
	n, err := c.BuyNumber(context.Background(), account, number, inboundURL)
	if err != nil {
		t.Fatalf("buy %s: %v", number, err)
	}
	return n
}

// wantTwilioRefusal checks that err is a refusal with Twilio's code and none of
// the port's other kinds.
func wantTwilioRefusal(t *testing.T, err error, code int) {
	t.Helper()
	var te *messages.TwilioError
	if !errors.As(err, &te) || te.Code != code || te.Status != http.StatusBadRequest || messages.TwilioCode(err) != code {
		t.Fatalf("got %v, want a Twilio refusal %d", err, code)
	}
	if errors.Is(err, tenants.ErrUpstreamUnavailable) || errors.Is(err, messages.ErrTwilioNotFound) || errors.Is(err, messages.ErrTwilioRateLimited) {
		t.Fatalf("a refusal of another kind too: %v", err)
	}
	noSecretIn(t, err)
}

// noSecretIn checks that an error text carries no credential, URL or
// header.
func noSecretIn(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	text := err.Error()
	for _, s := range []string{masterToken, "://", "Authorization", "Basic ", "/2010-04-01"} {
		if strings.Contains(text, s) {
			t.Fatalf("the error text carries %q: %s", s, text)
		}
	}
}

func TestMessagingNumbers(t *testing.T) {
	srv, c, sub := messagingDouble(t)
	ctx := context.Background()

	got, err := c.SearchNumber(ctx, sub, "US", "")
	if err != nil || got != "+14155550100" {
		t.Fatalf("search: %q, %v", got, err)
	}
	if got, err := c.SearchNumber(ctx, sub, "us", "212"); err != nil || got != "+12125550100" {
		t.Fatalf("search in 212: %q, %v", got, err)
	}
	n := clientBuys(t, c, sub, "+14155550100")
	if !pnShape.MatchString(n.SID) || n.PhoneNumber != "+14155550100" || !n.SMS || !n.MMS {
		t.Fatalf("bought %+v", n)
	}
	held := srv.Numbers()
	if len(held) != 1 || held[0] != (twiliotest.Number{AccountSID: sub, SID: n.SID, PhoneNumber: "+14155550100",
		SMSURL: inboundURL, SMSMethod: "POST", Created: held[0].Created}) {
		t.Fatalf("the double holds %+v", held)
	}
	// A bought number is no longer offered.
	if got, err := c.SearchNumber(ctx, sub, "US", "415"); err != nil || got != "+14155550101" {
		t.Fatalf("search after buying: %q, %v", got, err)
	}
	if found, err := c.FindNumber(ctx, sub, "+14155550100"); err != nil || found != n {
		t.Fatalf("find: %+v, %v", found, err)
	}
	// Twilio's filter matches partial numbers; FindNumber only the number.
	clientBuys(t, c, sub, "+14155550101")
	if _, err := c.FindNumber(ctx, sub, "+1415555010"); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("find a partial number: %v, want ErrTwilioNotFound", err)
	}
	// Another account's number is not this one's.
	other, err := c.CreateSubaccount(ctx, "switchboard customer other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindNumber(ctx, other.SID, "+14155550100"); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("find another account's number: %v, want ErrTwilioNotFound", err)
	}
	if err := c.ReleaseNumber(ctx, other.SID, n.SID); err != nil {
		t.Fatalf("release another account's number: %v", err)
	}
	if len(srv.Numbers()) != 2 {
		t.Fatal("an account released another's number")
	}

	if err := c.ReleaseNumber(ctx, sub, n.SID); err != nil {
		t.Fatal(err)
	}
	if got := srv.Numbers(); len(got) != 1 || got[0].PhoneNumber != "+14155550101" {
		t.Fatalf("after release the double holds %+v", got)
	}
	// Gone is released.
	if err := c.ReleaseNumber(ctx, sub, n.SID); err != nil {
		t.Fatalf("release again: %v", err)
	}
	if _, err := c.FindNumber(ctx, sub, "+14155550100"); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("find a released number: %v", err)
	}
	for route, want := range map[string]int{twiliotest.RouteAvailableLocal: 3, twiliotest.RouteNumberBuy: 2,
		twiliotest.RouteNumberList: 4, twiliotest.RouteNumberRelease: 3} {
		if got := srv.RouteCount(route); got != want {
			t.Errorf("%s: %d requests, want %d", route, got, want)
		}
	}
}

func TestMessagingNumberRefusals(t *testing.T) {
	srv, c, sub := messagingDouble(t)
	ctx := context.Background()
	other, err := c.CreateSubaccount(ctx, "switchboard customer other")
	if err != nil {
		t.Fatal(err)
	}
	clientBuys(t, c, other.SID, "+14155550100")
	srv.MarkUnavailable("+14155550101")
	srv.ExhaustArea("312")

	for _, tc := range []struct {
		name, number string
		code         int
	}{
		{"another account's", "+14155550100", messages.CodeNumberUnavailable},
		{"unavailable", "+14155550101", messages.CodeNumberUnavailable},
		{"in an exhausted area", "+13125550100", messages.CodeNumberUnavailable},
		{"not E.164", "4155550102", messages.CodeNumberInvalid},
		{"letters", "+1415CALLNOW", messages.CodeNumberInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.BuyNumber(ctx, sub, tc.number, inboundURL)
			wantTwilioRefusal(t, err, tc.code)
		})
	}
	// Searches skip what cannot be bought, and find nothing where nothing is.
	if got, err := c.SearchNumber(ctx, sub, "US", "415"); err != nil || got != "+14155550102" {
		t.Fatalf("search: %q, %v", got, err)
	}
	before := srv.RouteCount(twiliotest.RouteAvailableLocal)
	for _, tc := range []struct{ country, area string }{{"US", "312"}, {"GB", ""}} {
		_, err := c.SearchNumber(ctx, sub, tc.country, tc.area)
		wantTwilioRefusal(t, err, messages.CodeNoNumbersInArea)
	}
	if got := srv.RouteCount(twiliotest.RouteAvailableLocal); got != before+2 {
		t.Fatalf("%d searches reached Twilio, want 2", got-before)
	}
	// Arguments that cannot name a place are refused before any request.
	for _, tc := range []struct{ country, area string }{{"USA", ""}, {"U/", ""}, {"US", "41a"}, {"US", "0415"}, {"US", "-415"}} {
		_, err := c.SearchNumber(ctx, sub, tc.country, tc.area)
		wantTwilioRefusal(t, err, messages.CodeNoNumbersInArea)
	}
	if got := srv.RouteCount(twiliotest.RouteAvailableLocal); got != before+2 {
		t.Fatal("a search Twilio could not answer reached it")
	}
	if got := srv.Numbers(); len(got) != 1 {
		t.Fatalf("refused purchases bought %+v", got)
	}
}

func TestMessagingMessages(t *testing.T) {
	srv, c, sub := messagingDouble(t)
	ctx := context.Background()
	from := clientBuys(t, c, sub, "+14155550100").PhoneNumber

	send := messages.Send{From: from, To: "+14155559999", Body: strings.Repeat("long ", 40),
		MediaURLs:      []string{"https://media.example.com/a.png", "https://media.example.com/b.jpg?x=1&y=2"},
		StatusCallback: "https://hooks.example.com/twilio/status?m=1"}
	m, err := c.CreateMessage(ctx, sub, send)
	if err != nil {
		t.Fatal(err)
	}
	if !smShape.MatchString(m.SID) || m.AccountSID != sub || m.To != send.To || m.From != from || m.Body != send.Body ||
		m.Status != "queued" || m.Segments != 2 || m.Direction != "outbound-api" || m.ErrorCode != 0 || !m.DateSent.IsZero() ||
		m.DateCreated.IsZero() || m.DateCreated.Location() != time.UTC {
		t.Fatalf("created %+v", m)
	}
	held := srv.Messages()
	if len(held) != 1 || held[0].SID != m.SID || held[0].AccountSID != sub || held[0].StatusCallback != send.StatusCallback ||
		!slices.Equal(held[0].MediaURLs, send.MediaURLs) || held[0].Body != send.Body || !held[0].Created.Equal(m.DateCreated) {
		t.Fatalf("the double holds %+v", held)
	}

	sms, err := c.CreateMessage(ctx, sub, messages.Send{From: from, To: "+14155559999", Body: "héllo"})
	if err != nil || !strings.HasPrefix(sms.SID, "SM") || sms.Segments != 1 {
		t.Fatalf("sms: %+v, %v", sms, err)
	}
	if got := srv.Messages()[1]; got.StatusCallback != "" || got.MediaURLs != nil {
		t.Fatalf("an SMS without callback or media: %+v", got)
	}

	if got, err := c.FetchMessage(ctx, sub, m.SID); err != nil || got != m {
		t.Fatalf("fetch: %+v, %v; want %+v", got, err, m)
	}
	srv.SetMessageStatus(m.SID, "undelivered")
	srv.SetMessageErrorCode(m.SID, 30003)
	got, err := c.FetchMessage(ctx, sub, m.SID)
	if err != nil || got.Status != "undelivered" || got.ErrorCode != 30003 || got.DateSent.IsZero() {
		t.Fatalf("fetch after delivery: %+v, %v", got, err)
	}

	if err := c.RedactMessage(ctx, sub, m.SID); err != nil {
		t.Fatal(err)
	}
	if got := srv.Messages()[0]; got.Body != "" || got.To != send.To {
		t.Fatalf("after redaction the double holds %+v", got)
	}
	if got, err := c.FetchMessage(ctx, sub, m.SID); err != nil || got.Body != "" {
		t.Fatalf("fetch after redaction: %+v, %v", got, err)
	}

	// Twilio keeps a message until its status is final.
	wantTwilioRefusal(t, c.DeleteMessage(ctx, sub, sms.SID), messages.CodeMessageNotFinished)
	if err := c.DeleteMessage(ctx, sub, m.SID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteMessage(ctx, sub, m.SID); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if got := srv.Messages(); len(got) != 1 || got[0].SID != sms.SID {
		t.Fatalf("after deletion the double holds %+v", got)
	}
	if _, err := c.FetchMessage(ctx, sub, m.SID); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("fetch a deleted message: %v", err)
	}
	if err := c.RedactMessage(ctx, sub, m.SID); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("redact a deleted message: %v", err)
	}
	// Another account's message is not this one's.
	other, err := c.CreateSubaccount(ctx, "switchboard customer other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchMessage(ctx, other.SID, sms.SID); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("fetch another account's message: %v", err)
	}
	for route, want := range map[string]int{twiliotest.RouteMessageCreate: 2, twiliotest.RouteMessageFetch: 5,
		twiliotest.RouteMessageUpdate: 2, twiliotest.RouteMessageDelete: 3} {
		if got := srv.RouteCount(route); got != want {
			t.Errorf("%s: %d requests, want %d", route, got, want)
		}
	}
}

func TestMessagingMessageRefusals(t *testing.T) {
	srv, c, sub := messagingDouble(t)
	ctx := context.Background()
	from := clientBuys(t, c, sub, "+14155550100").PhoneNumber

	_, err := c.CreateMessage(ctx, sub, messages.Send{From: from, To: "555-1234", Body: "hi"})
	wantTwilioRefusal(t, err, messages.CodeInvalidTo)
	_, err = c.CreateMessage(ctx, sub, messages.Send{From: "+14155550199", To: "+14155559999", Body: "hi"})
	wantTwilioRefusal(t, err, messages.CodeFromNotYours)
	for _, code := range []int{messages.CodeOptedOut, messages.CodeNoInternational, messages.CodeNotMobile, messages.CodeCannotRoute} {
		srv.RefuseNextMessage(code)
		_, err = c.CreateMessage(ctx, sub, messages.Send{From: from, To: "+14155559999", Body: "hi"})
		wantTwilioRefusal(t, err, code)
	}
	if got := srv.Messages(); len(got) != 0 {
		t.Fatalf("refused messages were created: %+v", got)
	}
	// Only the next one is refused.
	if _, err := c.CreateMessage(ctx, sub, messages.Send{From: from, To: "+14155559999", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
}

func TestMessagingListsEveryPage(t *testing.T) {
	srv, c, sub := messagingDouble(t)
	ctx := context.Background()
	day1 := time.Date(2026, 2, 1, 23, 30, 0, 0, time.UTC)
	now := day1
	srv.SetNow(func() time.Time { return now })
	from := clientBuys(t, c, sub, "+14155550100").PhoneNumber

	var sids []string // oldest first
	for i := range 5 {
		to := "+14155559999"
		if i%2 == 1 {
			to = "+14155558888"
		}
		m, err := c.CreateMessage(ctx, sub, messages.Send{From: from, To: to, Body: fmt.Sprint("message ", i)})
		if err != nil {
			t.Fatal(err)
		}
		sids = append(sids, m.SID)
	}
	// Messages 0 and 1 were sent on day 1, 2 and 3 the next day; 4 is
	// still queued.
	srv.SetMessageStatus(sids[0], "sent")
	srv.SetMessageStatus(sids[1], "delivered")
	now = day1.Add(time.Hour)
	srv.SetMessageStatus(sids[2], "delivered")
	srv.SetMessageStatus(sids[3], "failed")
	srv.SetMessageStatus(sids[3], "sent")
	srv.SetPageLimit(2)

	list := func(f messages.ListFilter) []string {
		t.Helper()
		got, err := listAll(ctx, c, sub, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range got {
			out = append(out, m.SID)
		}
		return out
	}
	newestFirst := slices.Clone(sids)
	slices.Reverse(newestFirst)
	if got := list(messages.ListFilter{}); !slices.Equal(got, newestFirst) {
		t.Fatalf("listed %v, want %v", got, newestFirst)
	}
	if n := srv.RouteCount(twiliotest.RouteMessageList); n != 3 {
		t.Fatalf("%d list requests, want 3 pages", n)
	}
	if got := list(messages.ListFilter{To: "+14155559999"}); !slices.Equal(got, []string{sids[4], sids[2], sids[0]}) {
		t.Fatalf("to +14155559999: %v", got)
	}
	if got := list(messages.ListFilter{To: "+14155558888", From: from}); !slices.Equal(got, []string{sids[3], sids[1]}) {
		t.Fatalf("to +14155558888: %v", got)
	}
	// Twilio counts whole days: a time late on day 2 selects all of day 2.
	lateDay2 := time.Date(2026, 2, 2, 22, 0, 0, 0, time.FixedZone("X", -3*3600))
	if got := list(messages.ListFilter{SentAfter: lateDay2.Add(-12 * time.Hour)}); !slices.Equal(got, []string{sids[3], sids[2]}) {
		t.Fatalf("sent on or after day 2: %v", got)
	}
	if got := list(messages.ListFilter{SentAfter: day1, From: from}); !slices.Equal(got, []string{sids[3], sids[2], sids[1], sids[0]}) {
		t.Fatalf("sent on or after day 1: %v", got)
	}
	if got := list(messages.ListFilter{SentAfter: day1.AddDate(0, 0, 2)}); len(got) != 0 {
		t.Fatalf("sent on or after day 3: %v", got)
	}
	// A filter twilio-go would mangle in a query string is applied all the
	// same.
	if got := list(messages.ListFilter{To: "whatsapp:+1.5"}); len(got) != 0 {
		t.Fatalf("to a mangled number: %v", got)
	}

	// Numbers are listed over pages too.
	for _, n := range []string{"+14155550101", "+14155550102"} {
		clientBuys(t, c, sub, n)
	}
	before := srv.RouteCount(twiliotest.RouteNumberList)
	if n, err := c.FindNumber(ctx, sub, "+14155550102"); err != nil || n.PhoneNumber != "+14155550102" {
		t.Fatalf("find: %+v, %v", n, err)
	}
	if _, err := c.FindNumber(ctx, sub, "+1.4155550102"); !errors.Is(err, messages.ErrTwilioNotFound) {
		t.Fatalf("find a mangled number: %v", err)
	}
	if n := srv.RouteCount(twiliotest.RouteNumberList) - before; n != 3 {
		t.Fatalf("%d number list requests, want 1 filtered and 2 pages unfiltered", n)
	}
}

// clientMessagingCalls are one call of each method of the port, with the route
// it takes, against account; sms must be a message of account, pn a number
// of account.
func clientMessagingCalls(c *twilio.Client, account, from, sms, pn string) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		twiliotest.RouteAvailableLocal: func() error { _, err := c.SearchNumber(ctx, account, "US", ""); return err },
		twiliotest.RouteNumberBuy: func() error {
			_, err := c.BuyNumber(ctx, account, "+14155550150", inboundURL)
			return err
		},
		twiliotest.RouteNumberList:    func() error { _, err := c.FindNumber(ctx, account, from); return err },
		twiliotest.RouteNumberRelease: func() error { return c.ReleaseNumber(ctx, account, pn) },
		twiliotest.RouteMessageCreate: func() error {
			_, err := c.CreateMessage(ctx, account, messages.Send{From: from, To: "+14155559999", Body: "hi"})
			return err
		},
		twiliotest.RouteMessageFetch: func() error { _, err := c.FetchMessage(ctx, account, sms); return err },
		twiliotest.RouteMessageList: func() error {
			_, err := listAll(ctx, c, account, messages.ListFilter{})
			return err
		},
		twiliotest.RouteMessageUpdate: func() error { return c.RedactMessage(ctx, account, sms) },
		twiliotest.RouteMessageDelete: func() error { return c.DeleteMessage(ctx, account, sms) },
	}
}

// clientMessagingFixture is a sub-account with a number and a delivered message.
func clientMessagingFixture(t *testing.T, timeout time.Duration) (srv *twiliotest.Server, c *twilio.Client, sub, from, sms, pn string) {
	t.Helper()
	srv, c, sub = messagingDouble(t)
	c = newClient(t, srv.URL(), masterToken, timeout)
	n := clientBuys(t, c, sub, "+14155550100")
	m, err := c.CreateMessage(context.Background(), sub, messages.Send{From: n.PhoneNumber, To: "+14155559999", Body: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetMessageStatus(m.SID, "delivered")
	return srv, c, sub, n.PhoneNumber, m.SID, n.SID
}

func TestMessagingUpstreamFailures(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503} {
		srv, c, sub, from, sms, pn := clientMessagingFixture(t, 2*time.Second)
		for route, call := range clientMessagingCalls(c, sub, from, sms, pn) {
			t.Run(fmt.Sprintf("%d %s", status, route), func(t *testing.T) {
				before := len(srv.Messages()) + len(srv.Numbers())
				srv.FailNextOn(route, 1, status)
				err := call()
				if !errors.Is(err, tenants.ErrUpstreamUnavailable) || errors.Is(err, messages.ErrTwilioRateLimited) != (status == 429) ||
					errors.Is(err, messages.ErrTwilioNotFound) || messages.TwilioCode(err) != 0 {
					t.Fatalf("Twilio %d: %v", status, err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("status %d", status)) {
					t.Fatalf("the error does not name Twilio's status: %v", err)
				}
				noSecretIn(t, err)
				if after := len(srv.Messages()) + len(srv.Numbers()); after != before {
					t.Fatal("a failed call changed Twilio")
				}
			})
		}
	}
}

// FailNextOn fails its route only.
func TestMessagingFailNextOnOneRoute(t *testing.T) {
	srv, c, sub, from, sms, _ := clientMessagingFixture(t, 2*time.Second)
	ctx := context.Background()
	srv.FailNextOn(twiliotest.RouteMessageCreate, 1, 503)
	if _, err := c.FetchMessage(ctx, sub, sms); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMessage(ctx, sub, messages.Send{From: from, To: "+14155559999", Body: "hi"}); !errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.CreateMessage(ctx, sub, messages.Send{From: from, To: "+14155559999", Body: "hi"}); err != nil {
		t.Fatalf("create after the failure: %v", err)
	}
}

func TestMessagingUnknownAccount(t *testing.T) {
	_, c, _, from, sms, pn := clientMessagingFixture(t, 2*time.Second)
	unknown := "AC" + strings.Repeat("0", 32)
	for route, call := range clientMessagingCalls(c, unknown, from, sms, pn) {
		err := call()
		switch route {
		case twiliotest.RouteNumberRelease, twiliotest.RouteMessageDelete:
			// Twilio's 404 does not tell a gone resource from a gone account.
			if err != nil {
				t.Errorf("%s: %v, want nil", route, err)
			}
		default:
			if !errors.Is(err, messages.ErrTwilioNotFound) || errors.Is(err, tenants.ErrUpstreamUnavailable) {
				t.Errorf("%s: %v, want ErrTwilioNotFound", route, err)
			}
			noSecretIn(t, err)
		}
	}
}

// A string that is not a SID never reaches Twilio: twilio-go would put it
// into the path as it is.
func TestMessagingRefusesBadSIDsBeforeAnyRequest(t *testing.T) {
	srv, c, sub, from, sms, pn := clientMessagingFixture(t, 2*time.Second)
	before := srv.Requests()
	for _, account := range []string{"", "AC123", "AC" + strings.Repeat("A", 32), "../Accounts/" + sub, sub + "/Messages"} {
		for route, call := range clientMessagingCalls(c, account, from, sms, pn) {
			if err := call(); !errors.Is(err, messages.ErrTwilioNotFound) {
				t.Errorf("account %q, %s: %v, want ErrTwilioNotFound", account, route, err)
			}
		}
	}
	ctx := context.Background()
	for _, sid := range []string{"", sms[:33], "SM" + strings.Repeat("0", 31) + "/", "PN" + sms[2:], "../" + sms, strings.ToUpper(sms)} {
		_, ferr := c.FetchMessage(ctx, sub, sid)
		for i, err := range []error{ferr, c.RedactMessage(ctx, sub, sid), c.DeleteMessage(ctx, sub, sid)} {
			if !errors.Is(err, messages.ErrTwilioNotFound) {
				t.Errorf("message %q, call %d: %v, want ErrTwilioNotFound", sid, i, err)
			}
		}
	}
	for _, sid := range []string{"", sms, pn + "/..", "PN" + strings.Repeat("G", 32)} {
		if err := c.ReleaseNumber(ctx, sub, sid); !errors.Is(err, messages.ErrTwilioNotFound) {
			t.Errorf("number %q: %v, want ErrTwilioNotFound", sid, err)
		}
	}
	if n := srv.Requests() - before; n != 0 {
		t.Fatalf("%d requests reached Twilio", n)
	}
}

func TestMessagingTimeouts(t *testing.T) {
	srv, c, sub, from, sms, pn := clientMessagingFixture(t, 200*time.Millisecond)
	srv.SetDelay(3 * time.Second)
	for route, call := range clientMessagingCalls(c, sub, from, sms, pn) {
		start := time.Now()
		err := call()
		if !errors.Is(err, tenants.ErrUpstreamUnavailable) || !strings.Contains(err.Error(), "no answer in time") ||
			errors.Is(err, messages.ErrTwilioRateLimited) {
			t.Fatalf("%s against a slow Twilio: %v", route, err)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("%s waited %s", route, elapsed)
		}
	}
	// The caller's context counts too.
	srv.SetDelay(3 * time.Second)
	c = newClient(t, srv.URL(), masterToken, 10*time.Second)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.FetchMessage(short, sub, sms); !errors.Is(err, tenants.ErrUpstreamUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller's deadline: %v", err)
	}
}

func TestMessagingLostCreateAnswer(t *testing.T) {
	srv, c, sub, from, _, _ := clientMessagingFixture(t, 2*time.Second)
	srv.LoseNextMessageAnswer()
	_, err := c.CreateMessage(context.Background(), sub, messages.Send{From: from, To: "+14155557777", Body: "lost"})
	if !errors.Is(err, tenants.ErrUpstreamUnavailable) || messages.TwilioCode(err) != 0 {
		t.Fatalf("lost answer: %v, want ErrUpstreamUnavailable", err)
	}
	noSecretIn(t, err)
	var lost []twiliotest.Message
	for _, m := range srv.Messages() {
		if m.To == "+14155557777" {
			lost = append(lost, m)
		}
	}
	if len(lost) != 1 || lost[0].Body != "lost" {
		t.Fatalf("the double holds %+v, want exactly the one message", lost)
	}
	// The message is there to be found.
	got, err := listAll(context.Background(), c, sub, messages.ListFilter{To: "+14155557777"})
	if err != nil || len(got) != 1 || got[0].SID != lost[0].SID {
		t.Fatalf("list: %+v, %v", got, err)
	}
}

// Answers that are not Twilio's are upstream failures, and what Twilio
// says is repeated without URLs.
func TestMessagingAnswersThatAreNotTwilios(t *testing.T) {
	sub := "AC" + strings.Repeat("1", 32)
	for _, tc := range []struct {
		status      int
		body        string
		rateLimited bool
		refusal     int
	}{
		{403, "<html>Forbidden by the proxy</html>", false, 0},
		{404, "<html>Not Found</html>", false, 0},
		{429, "<html>slow down</html>", true, 0},
		{502, "<html>Bad Gateway</html>", false, 0},
		{201, `{"sid": 7}`, false, 0},
		{201, `{"body": "no sid"}`, false, 0},
		{200, "<html>captive portal</html>", false, 0},
		{400, `{"code": 21609, "message": "Invalid StatusCallback https://h.example/cb?token=` + masterToken + ` for /2010-04-01/Accounts/x", "status": 400}`, false, 21609},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, masterToken, time.Second)
			_, err := c.CreateMessage(context.Background(), sub, messages.Send{From: "+14155550100", To: "+14155559999", Body: "hi"})
			if tc.refusal != 0 {
				wantTwilioRefusal(t, err, tc.refusal)
				// Twilio's text is kept (scrubbed of URLs) in the refusal, to be
				// stored sealed; the error string never repeats it (it can
				// name a phone number, and errors reach logs).
				var te *messages.TwilioError
				if !errors.As(err, &te) || te.Message != "Invalid StatusCallback [url] for [url]" || strings.Contains(err.Error(), "Invalid") {
					t.Fatalf("Twilio's message: %v", err)
				}
				return
			}
			if !errors.Is(err, tenants.ErrUpstreamUnavailable) || errors.Is(err, messages.ErrTwilioRateLimited) != tc.rateLimited ||
				errors.Is(err, messages.ErrTwilioNotFound) || messages.TwilioCode(err) != 0 {
				t.Fatalf("HTTP %d %q: %v", tc.status, tc.body, err)
			}
			noSecretIn(t, err)
		})
	}
}

func TestMessagingWrongCredentials(t *testing.T) {
	srv, _, sub, from, sms, pn := clientMessagingFixture(t, 2*time.Second)
	wrong := "0000000000000000000000000000000a"
	c := newClient(t, srv.URL(), wrong, 2*time.Second)
	for route, call := range clientMessagingCalls(c, sub, from, sms, pn) {
		err := call()
		wantTwilioRefusalStatus(t, err, http.StatusUnauthorized, 20003)
		if strings.Contains(err.Error(), wrong) {
			t.Fatalf("%s: the error carries the token", route)
		}
	}
}

func wantTwilioRefusalStatus(t *testing.T, err error, status, code int) {
	t.Helper()
	var te *messages.TwilioError
	if !errors.As(err, &te) || te.Status != status || te.Code != code || errors.Is(err, tenants.ErrUpstreamUnavailable) {
		t.Fatalf("got %v, want a refusal %d/%d", err, status, code)
	}
	noSecretIn(t, err)
}
