package messages_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/twilio"
)

// listQueries records the query of every message list that reaches the
// double through a proxy, and returns a client that goes through it.
func (e *env) listQueries(t *testing.T) (*twilio.Client, func() []url.Values) {
	t.Helper()
	target, err := url.Parse(e.dbl.URL())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []url.Values
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Messages.json") {
			mu.Lock()
			seen = append(seen, r.URL.Query())
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := twilio.NewClient(twilio.Config{AccountSID: masterSID, AuthToken: masterToken, APIURL: srv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []url.Values {
		mu.Lock()
		defer mu.Unlock()
		return append([]url.Values(nil), seen...)
	}
}

// TestReconcileAsksWithDateSentBoundsAndPages: a lost answer is reconciled
// by asking Twilio for the messages between the two numbers sent from the
// attempt's day (a minute before it) to the day after, a page at a time,
// and the message is found on a later page and adopted, never sent again.
func TestReconcileAsksWithDateSentBoundsAndPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, queries := e.listQueries(t)
	e.dbl.SetPageLimit(2)
	svc := e.service(client, messages.MinAttemptLease)
	defer run(svc)()
	sent := func(body string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if at := e.atTwilio(body); len(at) == 1 {
				e.dbl.SetMessageStatus(at[0].SID, "sent")
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached Twilio", body)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	e.dbl.LoseNextMessageAnswer()
	lost := e.send(t, svc, "reconcile-paged-marker")
	sent("reconcile-paged-marker")
	attemptAt := time.Now().UTC()
	// Newer messages between the same numbers push it past the first page.
	for _, b := range []string{"later-1", "later-2", "later-3"} {
		e.send(t, svc, b)
		sent(b)
	}
	got := e.wait(t, svc, lost.ID, func(m messages.Message) bool { return m.TwilioSID != nil })
	at := e.atTwilio("reconcile-paged-marker")
	if len(at) != 1 || *got.TwilioSID != at[0].SID {
		t.Fatalf("%d at Twilio, adopted %v", len(at), got.TwilioSID)
	}
	qs := queries()
	if len(qs) == 0 {
		t.Fatal("no list asked of Twilio")
	}
	day := func(v string) string {
		if p, err := time.Parse(time.RFC3339, v); err == nil {
			return p.UTC().Format(time.DateOnly)
		}
		return v
	}
	paged := false
	for _, q := range qs {
		after, before := day(q.Get("DateSent>")), day(q.Get("DateSent<"))
		if want := attemptAt.Add(-time.Minute).Format(time.DateOnly); after != want {
			t.Errorf("a list asked DateSent> %q, want %s (the attempt's day, a minute before)", q.Get("DateSent>"), want)
		}
		if want := attemptAt.Add(24 * time.Hour).Format(time.DateOnly); before != want {
			t.Errorf("a list asked DateSent< %q, want %s (a day after the attempt)", q.Get("DateSent<"), want)
		}
		if q.Get("To") != recipient || q.Get("From") != e.number {
			t.Errorf("a list asked To %q From %q", q.Get("To"), q.Get("From"))
		}
		paged = paged || q.Get("PageToken") != ""
	}
	if !paged {
		t.Errorf("reconciliation read one page only (%d lists): the message was on the second", len(qs))
	}
}
