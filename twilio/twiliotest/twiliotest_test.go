package twiliotest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/twilio/twiliotest"
)

const (
	master = "AC0123456789abcdef0123456789abcdef"
	token  = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
)

var created = time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC)

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// call sends one request the way twilio-go does: Basic auth, forms for
// writes.
func call(t *testing.T, s *twiliotest.Server, method, path string, form url.Values) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(master, token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, out}
}

func newServer(t *testing.T) *twiliotest.Server {
	s := twiliotest.NewServer(t, master, token)
	s.SetNow(func() time.Time { return created })
	return s
}

func create(t *testing.T, s *twiliotest.Server, name string) map[string]any {
	t.Helper()
	a := call(t, s, "POST", "/2010-04-01/Accounts.json", url.Values{"FriendlyName": {name}})
	if a.status != 201 {
		t.Fatalf("create: %d %v", a.status, a.body)
	}
	return a.body
}

// wantError checks an error body in Twilio's shape.
func wantError(t *testing.T, a answer, status, code int) {
	t.Helper()
	if a.status != status || a.body["status"] != float64(status) || a.body["code"] != float64(code) ||
		a.body["more_info"] != fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code) || a.body["message"] == "" {
		t.Fatalf("got %d %v, want a Twilio error %d with code %d", a.status, a.body, status, code)
	}
	if len(a.body) != 4 {
		t.Fatalf("error body has fields %v", a.body)
	}
}

func TestCreateAnswersTwiliosAccountResource(t *testing.T) {
	s := newServer(t)
	res := create(t, s, "switchboard customer 1")
	sid, _ := res["sid"].(string)
	if !regexp.MustCompile(`^AC[0-9a-f]{32}$`).MatchString(sid) {
		t.Fatalf("sid %q", sid)
	}
	if tok, _ := res["auth_token"].(string); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(tok) {
		t.Fatalf("auth_token %q", tok)
	}
	want := map[string]any{
		"friendly_name": "switchboard customer 1", "status": "active", "type": "Full", "owner_account_sid": master,
		"date_created": "Sat, 31 Jan 2026 10:00:00 +0000", "date_updated": "Sat, 31 Jan 2026 10:00:00 +0000",
		"uri": "/2010-04-01/Accounts/" + sid + ".json",
	}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s = %v, want %v", k, res[k], v)
		}
	}
	subs, _ := res["subresource_uris"].(map[string]any)
	if subs["messages"] != "/2010-04-01/Accounts/"+sid+"/Messages.json" ||
		subs["incoming_phone_numbers"] != "/2010-04-01/Accounts/"+sid+"/IncomingPhoneNumbers.json" {
		t.Errorf("subresource_uris %v", subs)
	}
	if len(res) != 10 {
		t.Errorf("account has %d fields: %v", len(res), res)
	}
	got := s.Accounts()
	if len(got) != 1 || got[0].SID != sid || got[0].AuthToken != res["auth_token"] || got[0].FriendlyName != "switchboard customer 1" ||
		got[0].Status != "active" || !got[0].Created.Equal(created) || s.CreateCount() != 1 {
		t.Fatalf("the double holds %+v, %d created", got, s.CreateCount())
	}
	// Without a name Twilio makes one up.
	a := call(t, s, "POST", "/2010-04-01/Accounts.json", url.Values{})
	if a.status != 201 || a.body["friendly_name"] != "SubAccount Created at 2026-01-31 10:00 AM" {
		t.Fatalf("unnamed: %d %v", a.status, a.body["friendly_name"])
	}
}

func TestAuthentication(t *testing.T) {
	s := newServer(t)
	for name, set := range map[string]func(*http.Request){
		"none":         func(*http.Request) {},
		"wrong token":  func(r *http.Request) { r.SetBasicAuth(master, "0"+token[1:]) },
		"wrong user":   func(r *http.Request) { r.SetBasicAuth("AC"+strings.Repeat("9", 32), token) },
		"bearer token": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) },
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.URL()+"/2010-04-01/Accounts.json", strings.NewReader("FriendlyName=x"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			set(req)
			a := do(t, req)
			wantError(t, a, 401, 20003)
			if a.header.Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate")
			}
		})
	}
	if s.CreateCount() != 0 || s.RouteCount(twiliotest.RouteCreate) != 0 || s.Requests() != 4 {
		t.Fatalf("unauthenticated requests did something: %d created, %d routed, %d requests",
			s.CreateCount(), s.RouteCount(twiliotest.RouteCreate), s.Requests())
	}
}

func TestWritesMustBeForms(t *testing.T) {
	s := newServer(t)
	sid := create(t, s, "x")["sid"].(string)
	for _, path := range []string{"/2010-04-01/Accounts.json", "/2010-04-01/Accounts/" + sid + ".json"} {
		for _, ct := range []string{"application/json", "", "text/plain", "multipart/form-data; boundary=x"} {
			req, _ := http.NewRequest("POST", s.URL()+path, strings.NewReader(`{"Status":"closed","FriendlyName":"y"}`))
			req.SetBasicAuth(master, token)
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			wantError(t, do(t, req), 400, 20001)
		}
	}
	if got := s.Accounts(); len(got) != 1 || got[0].Status != "active" {
		t.Fatalf("a refused write changed %+v", got)
	}
}

func TestListPages(t *testing.T) {
	s := newServer(t)
	var sids []string
	for range 3 {
		sids = append(sids, create(t, s, "dup")["sid"].(string))
	}
	create(t, s, "other")

	page0 := call(t, s, "GET", "/2010-04-01/Accounts.json?FriendlyName=dup&PageSize=2", nil)
	if page0.status != 200 {
		t.Fatalf("list: %d %v", page0.status, page0.body)
	}
	wantPage(t, page0.body, sids[:2], 0, 2, 0, 1)
	next, _ := page0.body["next_page_uri"].(string)
	if next == "" || page0.body["previous_page_uri"] != nil {
		t.Fatalf("page 0 links: %v", page0.body)
	}
	if first := page0.body["first_page_uri"]; first != "/2010-04-01/Accounts.json?FriendlyName=dup&Page=0&PageSize=2" {
		t.Fatalf("first_page_uri %v", first)
	}
	page1 := call(t, s, "GET", next, nil)
	wantPage(t, page1.body, sids[2:], 1, 2, 2, 2)
	if page1.body["next_page_uri"] != nil || page1.body["previous_page_uri"] == nil {
		t.Fatalf("page 1 links: %v", page1.body)
	}

	// The master account is listed too, as at Twilio.
	all := call(t, s, "GET", "/2010-04-01/Accounts.json", nil)
	if accounts := all.body["accounts"].([]any); len(accounts) != 5 || accounts[0].(map[string]any)["sid"] != master {
		t.Fatalf("unfiltered list: %v", all.body["accounts"])
	}
	// Filters.
	none := call(t, s, "GET", "/2010-04-01/Accounts.json?FriendlyName=nobody", nil)
	wantPage(t, none.body, nil, 0, 50, 0, 0)
	if a := call(t, s, "POST", "/2010-04-01/Accounts/"+sids[1]+".json", url.Values{"Status": {"suspended"}}); a.status != 200 {
		t.Fatalf("suspend: %v", a.body)
	}
	suspended := call(t, s, "GET", "/2010-04-01/Accounts.json?Status=suspended", nil)
	wantPage(t, suspended.body, sids[1:2], 0, 50, 0, 0)

	wantError(t, call(t, s, "GET", "/2010-04-01/Accounts.json?PageSize=0", nil), 400, 20001)
	wantError(t, call(t, s, "GET", "/2010-04-01/Accounts.json?PageSize=1001", nil), 400, 20001)
	if n := s.RouteCount(twiliotest.RouteList); n != 7 {
		t.Fatalf("%d list requests counted, want 7", n)
	}
}

func wantPage(t *testing.T, body map[string]any, sids []string, page, size, start, end int) {
	t.Helper()
	accounts, _ := body["accounts"].([]any)
	var got []string
	for _, a := range accounts {
		got = append(got, a.(map[string]any)["sid"].(string))
	}
	if fmt.Sprint(got) != fmt.Sprint(sids) || body["page"] != float64(page) || body["page_size"] != float64(size) ||
		body["start"] != float64(start) || body["end"] != float64(end) || body["uri"] == nil {
		t.Fatalf("page %v, want accounts %v, page %d, size %d, %d..%d", body, sids, page, size, start, end)
	}
}

func TestFetchAndUpdate(t *testing.T) {
	s := newServer(t)
	sid := create(t, s, "x")["sid"].(string)
	path := "/2010-04-01/Accounts/" + sid + ".json"

	if a := call(t, s, "GET", path, nil); a.status != 200 || a.body["sid"] != sid || a.body["status"] != "active" {
		t.Fatalf("fetch: %d %v", a.status, a.body)
	}
	later := created.Add(time.Hour)
	s.SetNow(func() time.Time { return later })
	a := call(t, s, "POST", path, url.Values{"Status": {"suspended"}, "FriendlyName": {"renamed"}})
	if a.status != 200 || a.body["status"] != "suspended" || a.body["friendly_name"] != "renamed" ||
		a.body["date_updated"] != "Sat, 31 Jan 2026 11:00:00 +0000" || a.body["date_created"] != "Sat, 31 Jan 2026 10:00:00 +0000" {
		t.Fatalf("update: %d %v", a.status, a.body)
	}
	wantError(t, call(t, s, "POST", path, url.Values{"Status": {"deleted"}}), 400, 20001)
	if a := call(t, s, "POST", path, url.Values{"Status": {"closed"}}); a.status != 200 || a.body["status"] != "closed" {
		t.Fatalf("close: %d %v", a.status, a.body)
	}
	// Closed is final.
	for _, form := range []url.Values{{"Status": {"active"}}, {"Status": {"suspended"}}, {"Status": {"closed"}}, {"FriendlyName": {"again"}}} {
		wantError(t, call(t, s, "POST", path, form), 400, 21100)
	}
	if got := s.Accounts()[0]; got.Status != "closed" || got.FriendlyName != "renamed" {
		t.Fatalf("a closed account changed: %+v", got)
	}

	unknown := "/2010-04-01/Accounts/AC" + strings.Repeat("0", 32) + ".json"
	wantError(t, call(t, s, "GET", unknown, nil), 404, 20404)
	wantError(t, call(t, s, "POST", unknown, url.Values{"Status": {"closed"}}), 404, 20404)
	wantError(t, call(t, s, "GET", "/2010-04-01/Accounts/"+sid+"/Messages.json", nil), 404, 20404)
	wantError(t, call(t, s, "GET", "/2010-04-01/Nothing.json", nil), 404, 20404)
	wantError(t, call(t, s, "DELETE", path, nil), 405, 20004)

	// The master account can be fetched but not closed.
	if a := call(t, s, "GET", "/2010-04-01/Accounts/"+master+".json", nil); a.status != 200 || a.body["friendly_name"] != twiliotest.MasterFriendlyName {
		t.Fatalf("master: %d %v", a.status, a.body)
	}
	wantError(t, call(t, s, "POST", "/2010-04-01/Accounts/"+master+".json", url.Values{"Status": {"closed"}}), 400, 21100)
	for route, want := range map[string]int{twiliotest.RouteCreate: 1, twiliotest.RouteFetch: 3, twiliotest.RouteUpdate: 9} {
		if got := s.RouteCount(route); got != want {
			t.Errorf("%s: %d, want %d", route, got, want)
		}
	}
}

func TestFailureInjection(t *testing.T) {
	t.Run("FailNext", func(t *testing.T) {
		s := newServer(t)
		s.FailNext(2, 429)
		for range 2 {
			a := call(t, s, "POST", "/2010-04-01/Accounts.json", url.Values{"FriendlyName": {"x"}})
			wantError(t, a, 429, 20429)
			if a.header.Get("Retry-After") != "1" {
				t.Fatal("429 without Retry-After")
			}
		}
		create(t, s, "x")
		s.FailNext(1, 503)
		wantError(t, call(t, s, "GET", "/2010-04-01/Accounts.json", nil), 503, 20503)
		s.FailNext(1, 500)
		wantError(t, call(t, s, "GET", "/2010-04-01/Accounts.json", nil), 500, 20500)
		if s.CreateCount() != 1 || s.Requests() != 5 {
			t.Fatalf("%d created, %d requests", s.CreateCount(), s.Requests())
		}
	})
	t.Run("LoseNextCreateAnswer", func(t *testing.T) {
		s := newServer(t)
		s.LoseNextCreateAnswer()
		req, _ := http.NewRequest("POST", s.URL()+"/2010-04-01/Accounts.json", strings.NewReader("FriendlyName=lost"))
		req.SetBasicAuth(master, token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_, err := http.DefaultClient.Do(req)
		if err == nil {
			t.Fatal("the answer was not lost")
		}
		if got := s.Accounts(); len(got) != 1 || got[0].FriendlyName != "lost" || s.CreateCount() != 1 {
			t.Fatalf("after a lost answer the double holds %+v", got)
		}
		// Only the next one is lost.
		create(t, s, "kept")
	})
	t.Run("SetDelay", func(t *testing.T) {
		s := newServer(t)
		s.SetDelay(300 * time.Millisecond)
		start := time.Now()
		call(t, s, "GET", "/2010-04-01/Accounts.json", nil)
		if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
			t.Fatalf("answered after %s", elapsed)
		}
		s.SetDelay(0)
	})
	t.Run("SetSubaccountLimit", func(t *testing.T) {
		s := newServer(t)
		s.SetSubaccountLimit(1)
		sid := create(t, s, "a")["sid"].(string)
		a := call(t, s, "POST", "/2010-04-01/Accounts.json", url.Values{"FriendlyName": {"b"}})
		wantError(t, a, 400, 21480)
		if msg := a.body["message"].(string); !strings.HasPrefix(msg, "Sub-account limit reached") {
			t.Fatalf("message %q", msg)
		}
		call(t, s, "POST", "/2010-04-01/Accounts/"+sid+".json", url.Values{"Status": {"closed"}})
		create(t, s, "b")
	})
}

func TestConcurrentUse(t *testing.T) {
	s := newServer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.URL()+"/2010-04-01/Accounts.json", strings.NewReader(fmt.Sprintf("FriendlyName=c%d", i)))
			req.SetBasicAuth(master, token)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 201 {
					err = errors.New(resp.Status)
				}
			}
			errs <- err
			s.Accounts()
			s.FailNext(0, 0)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s.CreateCount() != 20 || len(s.Accounts()) != 20 || s.RouteCount(twiliotest.RouteCreate) != 20 {
		t.Fatalf("%d created, %d held", s.CreateCount(), len(s.Accounts()))
	}
}
