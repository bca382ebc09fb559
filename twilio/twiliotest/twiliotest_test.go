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
	wantError(t, call(t, s, "GET", "/2010-04-01/Accounts/"+sid+"/Calls.json", nil), 404, 20404)
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

// callNoContent sends a request whose answer must be 204 with no body.
func callNoContent(t *testing.T, s *twiliotest.Server, method, path string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(master, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("%s %s: %d %q, want 204 and no body", method, path, resp.StatusCode, body)
	}
}

// buy buys number into the account at base, failing the test otherwise.
func buy(t *testing.T, s *twiliotest.Server, base, number string) map[string]any {
	t.Helper()
	a := call(t, s, "POST", base+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {number}, "SmsUrl": {"https://hooks.example.com/in"}, "SmsMethod": {"POST"}})
	if a.status != 201 {
		t.Fatalf("buy %s: %d %v", number, a.status, a.body)
	}
	return a.body
}

func TestNumbers(t *testing.T) {
	s := newServer(t)
	sid := create(t, s, "x")["sid"].(string)
	base := "/2010-04-01/Accounts/" + sid

	a := call(t, s, "GET", base+"/AvailablePhoneNumbers/US/Local.json?SmsEnabled=true&AreaCode=212&PageSize=3", nil)
	if a.status != 200 || a.body["next_page_uri"] != nil || a.body["page_size"] != float64(3) {
		t.Fatalf("search: %d %v", a.status, a.body)
	}
	found := a.body["available_phone_numbers"].([]any)
	first := found[0].(map[string]any)
	if len(found) != 3 || first["phone_number"] != "+12125550100" || first["friendly_name"] != "(212) 555-0100" ||
		first["iso_country"] != "US" || first["region"] != "NY" {
		t.Fatalf("available numbers %v", found)
	}
	if caps := first["capabilities"].(map[string]any); caps["SMS"] != true || caps["MMS"] != true {
		t.Fatalf("capabilities %v", caps)
	}
	if a := call(t, s, "GET", base+"/AvailablePhoneNumbers/US/Local.json", nil); a.body["available_phone_numbers"].([]any)[0].(map[string]any)["phone_number"] != "+14155550100" {
		t.Fatalf("search without area code: %v", a.body)
	}
	if a := call(t, s, "GET", base+"/AvailablePhoneNumbers/GB/Local.json", nil); a.status != 200 || len(a.body["available_phone_numbers"].([]any)) != 0 {
		t.Fatalf("search in GB: %d %v", a.status, a.body)
	}
	wantError(t, call(t, s, "GET", base+"/AvailablePhoneNumbers/US/Local.json?AreaCode=abc", nil), 400, 20001)

	pn := buy(t, s, base, "+12125550100")
	psid, _ := pn["sid"].(string)
	if !regexp.MustCompile(`^PN[0-9a-f]{32}$`).MatchString(psid) || pn["account_sid"] != sid || pn["phone_number"] != "+12125550100" ||
		pn["sms_url"] != "https://hooks.example.com/in" || pn["sms_method"] != "POST" || pn["date_created"] != "Sat, 31 Jan 2026 10:00:00 +0000" ||
		pn["uri"] != base+"/IncomingPhoneNumbers/"+psid+".json" {
		t.Fatalf("bought %v", pn)
	}
	if caps := pn["capabilities"].(map[string]any); caps["sms"] != true || caps["mms"] != true {
		t.Fatalf("capabilities %v", caps)
	}
	// A bought number is not offered any more.
	if a := call(t, s, "GET", base+"/AvailablePhoneNumbers/US/Local.json?AreaCode=212", nil); a.body["available_phone_numbers"].([]any)[0].(map[string]any)["phone_number"] != "+12125550101" {
		t.Fatalf("search after buying: %v", a.body)
	}

	// Refusals.
	other := "/2010-04-01/Accounts/" + create(t, s, "y")["sid"].(string)
	s.MarkUnavailable("+12125550102")
	s.ExhaustArea("312")
	for number, code := range map[string]int{"+12125550100": 21422, "+12125550102": 21422, "+13125550100": 21422, "2125550103": 21421, "+0123": 21421} {
		wantError(t, call(t, s, "POST", other+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {number}}), 400, code)
	}
	if a := call(t, s, "GET", base+"/AvailablePhoneNumbers/US/Local.json?AreaCode=312", nil); len(a.body["available_phone_numbers"].([]any)) != 0 {
		t.Fatalf("an exhausted area offers %v", a.body)
	}
	wantError(t, call(t, s, "POST", other+"/IncomingPhoneNumbers.json", url.Values{}), 400, 20001)
	wantError(t, call(t, s, "POST", other+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {"+12125550104"}, "SmsMethod": {"PUT"}}), 400, 20001)
	unknown := "/2010-04-01/Accounts/AC" + strings.Repeat("0", 32)
	wantError(t, call(t, s, "POST", unknown+"/IncomingPhoneNumbers.json", url.Values{"PhoneNumber": {"+12125550104"}}), 404, 20404)
	wantError(t, call(t, s, "GET", unknown+"/AvailablePhoneNumbers/US/Local.json", nil), 404, 20404)

	// The list matches partial numbers, and pages.
	buy(t, s, base, "+12125550105")
	buy(t, s, base, "+14155550100")
	list := call(t, s, "GET", base+"/IncomingPhoneNumbers.json?PhoneNumber=212555010*&PageSize=1", nil)
	numbers := list.body["incoming_phone_numbers"].([]any)
	if len(numbers) != 1 || numbers[0].(map[string]any)["phone_number"] != "+12125550100" {
		t.Fatalf("list: %v", list.body)
	}
	next := call(t, s, "GET", list.body["next_page_uri"].(string), nil)
	if numbers := next.body["incoming_phone_numbers"].([]any); len(numbers) != 1 || numbers[0].(map[string]any)["phone_number"] != "+12125550105" || next.body["next_page_uri"] != nil {
		t.Fatalf("page 2: %v", next.body)
	}
	if a := call(t, s, "GET", other+"/IncomingPhoneNumbers.json", nil); len(a.body["incoming_phone_numbers"].([]any)) != 0 {
		t.Fatalf("another account lists %v", a.body)
	}

	// Fetch and release.
	path := base + "/IncomingPhoneNumbers/" + psid + ".json"
	if a := call(t, s, "GET", path, nil); a.status != 200 || a.body["sid"] != psid {
		t.Fatalf("fetch: %d %v", a.status, a.body)
	}
	wantError(t, call(t, s, "GET", other+"/IncomingPhoneNumbers/"+psid+".json", nil), 404, 20404)
	wantError(t, call(t, s, "POST", path, url.Values{"SmsUrl": {"https://x.example"}}), 405, 20004)
	callNoContent(t, s, "DELETE", path)
	wantError(t, call(t, s, "GET", path, nil), 404, 20404)
	wantError(t, call(t, s, "DELETE", path, nil), 404, 20404)
	if got := s.Numbers(); len(got) != 2 || got[0].PhoneNumber != "+12125550105" || got[0].AccountSID != sid || got[0].SMSURL != "https://hooks.example.com/in" {
		t.Fatalf("the double holds %+v", got)
	}
	for route, want := range map[string]int{twiliotest.RouteAvailableLocal: 7, twiliotest.RouteNumberBuy: 11, twiliotest.RouteNumberList: 3,
		twiliotest.RouteNumberFetch: 3, twiliotest.RouteNumberRelease: 2} {
		if got := s.RouteCount(route); got != want {
			t.Errorf("%s: %d, want %d", route, got, want)
		}
	}
}

func TestMessages(t *testing.T) {
	s := newServer(t)
	sid := create(t, s, "x")["sid"].(string)
	base := "/2010-04-01/Accounts/" + sid
	buy(t, s, base, "+14155550100")
	send := func(form url.Values) answer {
		t.Helper()
		return call(t, s, "POST", base+"/Messages.json", form)
	}

	a := send(url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {"hello"},
		"MediaUrl": {"https://m.example/a.png", "https://m.example/b.png"}, "StatusCallback": {"https://hooks.example.com/status"}})
	if a.status != 201 {
		t.Fatalf("create: %d %v", a.status, a.body)
	}
	msid, _ := a.body["sid"].(string)
	if !regexp.MustCompile(`^MM[0-9a-f]{32}$`).MatchString(msid) {
		t.Fatalf("sid %q", msid)
	}
	want := map[string]any{"account_sid": sid, "to": "+14155559999", "from": "+14155550100", "body": "hello", "status": "queued",
		"num_segments": "1", "num_media": "2", "direction": "outbound-api", "date_created": "Sat, 31 Jan 2026 10:00:00 +0000",
		"date_sent": nil, "error_code": nil, "error_message": nil, "price": nil, "api_version": "2010-04-01",
		"uri": base + "/Messages/" + msid + ".json"}
	for k, v := range want {
		if a.body[k] != v {
			t.Errorf("%s = %v, want %v", k, a.body[k], v)
		}
	}
	if subs := a.body["subresource_uris"].(map[string]any); subs["media"] != base+"/Messages/"+msid+"/Media.json" {
		t.Errorf("subresource_uris %v", subs)
	}
	held := s.Messages()
	if len(held) != 1 || held[0].SID != msid || held[0].StatusCallback != "https://hooks.example.com/status" ||
		fmt.Sprint(held[0].MediaURLs) != "[https://m.example/a.png https://m.example/b.png]" || !held[0].Created.Equal(created) {
		t.Fatalf("the double holds %+v", held)
	}
	long := send(url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {strings.Repeat("é", 71)}})
	if lsid, _ := long.body["sid"].(string); !strings.HasPrefix(lsid, "SM") || long.body["num_segments"] != "2" {
		t.Fatalf("long: %v", long.body)
	}

	// Refusals.
	for _, tc := range []struct {
		form url.Values
		code int
	}{
		{url.Values{"From": {"+14155550100"}, "Body": {"x"}}, 21604},
		{url.Values{"To": {"4155559999"}, "From": {"+14155550100"}, "Body": {"x"}}, 21211},
		{url.Values{"To": {"+14155559999"}, "Body": {"x"}}, 21603},
		{url.Values{"To": {"+14155559999"}, "From": {"+14155550101"}, "Body": {"x"}}, 21606},
		{url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}}, 21602},
		{url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {strings.Repeat("x", 1601)}}, 21617},
		{url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {"x"}, "StatusCallback": {"hooks"}}, 21609},
	} {
		wantError(t, send(tc.form), 400, tc.code)
	}
	s.RefuseNextMessage(21610)
	wantError(t, send(url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {"x"}}), 400, 21610)
	wantError(t, call(t, s, "POST", "/2010-04-01/Accounts/AC"+strings.Repeat("0", 32)+"/Messages.json",
		url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {"x"}}), 404, 20404)
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("refusals created messages: %d held", n)
	}

	// Fetch, redact, delete.
	path := base + "/Messages/" + msid + ".json"
	if a := call(t, s, "GET", path, nil); a.status != 200 || a.body["body"] != "hello" {
		t.Fatalf("fetch: %d %v", a.status, a.body)
	}
	wantError(t, call(t, s, "POST", path, url.Values{"Body": {"changed"}}), 400, 20001)
	if a := call(t, s, "POST", path, url.Values{"Body": {""}}); a.status != 200 || a.body["body"] != "" {
		t.Fatalf("redact: %d %v", a.status, a.body)
	}
	if s.Messages()[0].Body != "" {
		t.Fatal("the double kept the body")
	}
	wantError(t, call(t, s, "DELETE", path, nil), 400, 20009)
	if !s.SetMessageStatus(msid, "delivered") || s.SetMessageStatus("SM"+strings.Repeat("0", 32), "delivered") {
		t.Fatal("SetMessageStatus")
	}
	if a := call(t, s, "GET", path, nil); a.body["status"] != "delivered" || a.body["date_sent"] != "Sat, 31 Jan 2026 10:00:00 +0000" {
		t.Fatalf("after delivery: %v", a.body)
	}
	callNoContent(t, s, "DELETE", path)
	wantError(t, call(t, s, "GET", path, nil), 404, 20404)
	wantError(t, call(t, s, "DELETE", path, nil), 404, 20404)
	wantError(t, call(t, s, "DELETE", base+"/Messages.json", nil), 405, 20004)
	for route, want := range map[string]int{twiliotest.RouteMessageCreate: 11, twiliotest.RouteMessageFetch: 3,
		twiliotest.RouteMessageUpdate: 2, twiliotest.RouteMessageDelete: 3} {
		if got := s.RouteCount(route); got != want {
			t.Errorf("%s: %d, want %d", route, got, want)
		}
	}
}

func TestMessageListFiltersAndPages(t *testing.T) {
	s := newServer(t)
	now := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return now })
	sid := create(t, s, "x")["sid"].(string)
	base := "/2010-04-01/Accounts/" + sid
	buy(t, s, base, "+14155550100")
	var sids []string
	for i := range 5 {
		a := call(t, s, "POST", base+"/Messages.json", url.Values{"To": {fmt.Sprintf("+1415555999%d", i%2)}, "From": {"+14155550100"}, "Body": {"x"}})
		sids = append(sids, a.body["sid"].(string))
	}
	s.SetMessageStatus(sids[0], "sent") // day 1
	now = now.AddDate(0, 0, 1)
	s.SetMessageStatus(sids[1], "delivered") // day 2
	s.SetMessageStatus(sids[2], "undelivered")
	// 3 and 4 are queued: no date_sent.

	listed := func(query string) []string {
		t.Helper()
		a := call(t, s, "GET", base+"/Messages.json?"+query, nil)
		if a.status != 200 {
			t.Fatalf("%s: %d %v", query, a.status, a.body)
		}
		var out []string
		for _, m := range a.body["messages"].([]any) {
			out = append(out, m.(map[string]any)["sid"].(string))
		}
		return out
	}
	for query, want := range map[string][]string{
		"":                                      {sids[4], sids[3], sids[2], sids[1], sids[0]},
		"To=%2B14155559990":                     {sids[4], sids[2], sids[0]},
		"To=%2B14155559991&From=%2B14155550100": {sids[3], sids[1]},
		"DateSent%3E=2026-02-02":                {sids[2], sids[1]},
		"DateSent%3E=2026-02-01T23%3A00%3A00Z":  {sids[2], sids[1], sids[0]},
		"DateSent%3C=2026-02-01":                {sids[0]},
		"DateSent=2026-02-02":                   {sids[2], sids[1]},
		"DateSent%3E=2026-02-03":                nil,
	} {
		if got := listed(query); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: %v, want %v", query, got, want)
		}
	}
	wantError(t, call(t, s, "GET", base+"/Messages.json?DateSent%3E=yesterday", nil), 400, 20001)

	// Pages keep the filters.
	s.SetPageLimit(1)
	page := call(t, s, "GET", base+"/Messages.json?To=%2B14155559990&PageSize=50", nil)
	var got []string
	for page.body != nil {
		if page.body["page_size"] != float64(1) {
			t.Fatalf("page_size %v", page.body["page_size"])
		}
		for _, m := range page.body["messages"].([]any) {
			got = append(got, m.(map[string]any)["sid"].(string))
		}
		next, _ := page.body["next_page_uri"].(string)
		if next == "" {
			break
		}
		if !strings.Contains(next, "To=%2B14155559990") {
			t.Fatalf("next_page_uri %s lost the filter", next)
		}
		page = call(t, s, "GET", next, nil)
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{sids[4], sids[2], sids[0]}) {
		t.Fatalf("paged %v", got)
	}
}

func TestMessagingFailureInjection(t *testing.T) {
	s := newServer(t)
	sid := create(t, s, "x")["sid"].(string)
	base := "/2010-04-01/Accounts/" + sid
	buy(t, s, base, "+14155550100")
	form := url.Values{"To": {"+14155559999"}, "From": {"+14155550100"}, "Body": {"x"}}

	t.Run("FailNextOn", func(t *testing.T) {
		s.FailNextOn(twiliotest.RouteMessageCreate, 2, 429)
		// Other routes answer.
		if a := call(t, s, "GET", base+"/Messages.json", nil); a.status != 200 {
			t.Fatalf("list: %d", a.status)
		}
		for range 2 {
			a := call(t, s, "POST", base+"/Messages.json", form)
			wantError(t, a, 429, 20429)
			if a.header.Get("Retry-After") != "1" {
				t.Fatal("429 without Retry-After")
			}
		}
		if n := len(s.Messages()); n != 0 || s.RouteCount(twiliotest.RouteMessageCreate) != 0 {
			t.Fatalf("injected failures created %d messages or were counted", n)
		}
		if a := call(t, s, "POST", base+"/Messages.json", form); a.status != 201 {
			t.Fatalf("after the failures: %d %v", a.status, a.body)
		}
	})
	t.Run("LoseNextMessageAnswer", func(t *testing.T) {
		before := len(s.Messages())
		s.LoseNextMessageAnswer()
		req, _ := http.NewRequest("POST", s.URL()+base+"/Messages.json", strings.NewReader(form.Encode()))
		req.SetBasicAuth(master, token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := http.DefaultClient.Do(req); err == nil {
			t.Fatal("the answer was not lost")
		}
		if n := len(s.Messages()); n != before+1 {
			t.Fatalf("after a lost answer the double holds %d messages, want %d", n, before+1)
		}
		if a := call(t, s, "POST", base+"/Messages.json", form); a.status != 201 {
			t.Fatalf("the next answer: %d", a.status)
		}
	})
}
