package api

import (
	"github.com/switchboard/switchboard/internal/racing"

	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/twilio/twiliotest"
)

// Concurrency tests: many real requests through the real router, released
// at once, against fresh customers each round.

const (
	raceN      = 24 // goroutines per race
	raceRounds = 8  // rounds per (sub)test
)

// raceClient keeps connections to the test server alive between rounds.
var raceClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * raceN}, Timeout: 30 * time.Second}

// raceAnswer is one answer of a race, as the tests judge it.
type raceAnswer struct {
	Status  int
	Code    string // problem code, "" for a success
	Detail  string
	Version int    // customer version, for a success
	State   string // customer status, for a success
	Problem bool   // application/problem+json
	Raw     string
	Err     error // transport failure
}

func (r raceAnswer) String() string {
	if r.Err != nil {
		return "transport error: " + r.Err.Error()
	}
	return fmt.Sprintf("%d %s", r.Status, r.Raw)
}

// send is do for goroutines: it never stops the test (the contract check
// only marks it failed) and reports a transport failure in the answer.
func (a *testAPI) send(t *testing.T, r req) raceAnswer {
	hr, err := http.NewRequest(r.method, a.srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		return raceAnswer{Err: err}
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+r.key)
	resp, err := raceClient.Do(hr)
	if err != nil {
		return raceAnswer{Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return raceAnswer{Err: err}
	}
	check := hr.Clone(t.Context())
	a.contract.Check(t, check, []byte(r.body), resp, raw)
	out := raceAnswer{Status: resp.StatusCode, Raw: string(raw),
		Problem: strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json")}
	var body struct {
		Code    string `json:"code"`
		Detail  string `json:"detail"`
		Version int    `json:"version"`
		Status  any    `json:"status"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		out.Err = fmt.Errorf("bad JSON %q: %w", raw, err)
		return out
	}
	out.Code, out.Detail, out.Version = body.Code, body.Detail, body.Version
	if s, ok := body.Status.(string); ok {
		out.State = s
	}
	return out
}

// tally counts answers by "status code".
func tally(answers []raceAnswer) map[string]int {
	m := map[string]int{}
	for _, r := range answers {
		switch {
		case r.Err != nil:
			m["transport error"]++
		case r.Code != "":
			m[fmt.Sprintf("%d %s", r.Status, r.Code)]++
		default:
			m[fmt.Sprintf("%d", r.Status)]++
		}
	}
	return m
}

// oneWinner checks that exactly one answer is a 200 and every other one a
// 409 version_conflict problem, and returns the winner's index.
func oneWinner(t *testing.T, round int, answers []raceAnswer) int {
	t.Helper()
	winner, bad := -1, 0
	for i, r := range answers {
		switch {
		case r.Err == nil && r.Status == 200:
			if winner >= 0 {
				bad++
			}
			winner = i
		case r.Err == nil && r.Status == 409 && r.Code == "version_conflict" && r.Problem:
		default:
			bad++
		}
	}
	if winner < 0 || bad > 0 {
		var odd []string
		for _, r := range answers {
			if r.Status != 409 || r.Code != "version_conflict" {
				odd = append(odd, r.String())
			}
		}
		t.Fatalf("round %d: answers %v, want exactly one 200 and %d × 409 version_conflict; the others:\n%s",
			round, tally(answers), len(answers)-1, strings.Join(odd, "\n"))
	}
	return winner
}

// raceEvent is one event of GET /v1/customers/{id}/events.
type raceEvent struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Version int            `json:"version"`
	Data    map[string]any `json:"data"`
}

// eventsOf reads a customer's whole audit trail and checks that its
// versions are 1..N without a gap or a repeat, N being the version.
func (a *testAPI) eventsOf(t *testing.T, id string, version int) []raceEvent {
	t.Helper()
	r := a.do(t, req{method: "GET", path: "/v1/customers/" + id + "/events?limit=200", key: a.key})
	if r.Status != 200 || r.Body["nextCursor"] != nil {
		t.Fatalf("events: %d %s", r.Status, r.Raw)
	}
	var page struct{ Items []raceEvent }
	if err := json.Unmarshal(r.Raw, &page); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, e := range page.Items {
		if e.Version != i+1 || ids[e.ID] {
			t.Fatalf("events are not versions 1..%d, one each: %s", version, r.Raw)
		}
		ids[e.ID] = true
	}
	if len(page.Items) != version {
		t.Fatalf("%d events for a customer at version %d: %s", len(page.Items), version, r.Raw)
	}
	return page.Items
}

func countType(evs []raceEvent, typ string) (n int, versions []int) {
	for _, e := range evs {
		if e.Type == typ {
			n++
			versions = append(versions, e.Version)
		}
	}
	return n, versions
}

// subaccountsOf is the Twilio double's sub-accounts of one customer.
func (a *testAPI) subaccountsOf(id string) []twiliotest.Account {
	var out []twiliotest.Account
	for _, acc := range a.twilio.Accounts() {
		if acc.FriendlyName == "switchboard customer "+id {
			out = append(out, acc)
		}
	}
	return out
}

func (a *testAPI) getCustomer(t *testing.T, id string) map[string]any {
	t.Helper()
	r := a.do(t, req{method: "GET", path: "/v1/customers/" + id, key: a.key})
	if r.Status != 200 {
		t.Fatalf("get customer: %d %s", r.Status, r.Raw)
	}
	return r.Body
}

// activeAt registers and activates a customer; it is ACTIVE at version 2.
func (a *testAPI) activeAt(t *testing.T, space string) string {
	t.Helper()
	id := a.register(t, space)["id"].(string)
	wantCustomer(t, a.activate(t, id), "ACTIVE", 2)
	return id
}

// detailVersion is the last number in a version_conflict detail: the
// version it gives as the current one (-1 if none).
func detailVersion(detail string) int {
	m := lastNumber.FindAllString(detail, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1])
	return n
}

var lastNumber = regexp.MustCompile(`[0-9]+`)

// staleDetails counts the losers whose detail gives, as the current version,
// the very version they expected (they were refused while the winner had
// not yet recorded its change), and the losers' details seen.
func staleDetails(answers []raceAnswer, expected int, seen map[string]int) (same int) {
	for _, r := range answers {
		if r.Code != "version_conflict" {
			continue
		}
		seen[r.Detail]++
		if detailVersion(r.Detail) == expected {
			same++
		}
	}
	return same
}

// TestRaceSameExpectedVersion: 24 changes of one customer from the same
// expectedVersion: exactly one wins, the others are 409 version_conflict,
// and the winner's change is recorded once.
func TestRaceSameExpectedVersion(t *testing.T) {
	type tc struct {
		name      string
		setup     func(t *testing.T, a *testAPI, space string) (id string, version int)
		method    string
		action    string
		body      func(v int) string
		event     string
		wantState string
	}
	active := func(t *testing.T, a *testAPI, space string) (string, int) { return a.activeAt(t, space), 2 }
	cases := []tc{
		{name: "contact-info", setup: active, method: "PUT", action: "contact-info",
			body: func(v int) string { return fmt.Sprintf(contactBody, fmt.Sprint(v)) }, event: "customer.contact_info_updated", wantState: "ACTIVE"},
		{name: "activate", setup: func(t *testing.T, a *testAPI, space string) (string, int) {
			return a.register(t, space)["id"].(string), 1
		}, method: "POST", action: "activate",
			body: func(v int) string { return fmt.Sprintf(`{"expectedVersion":%d}`, v) }, event: "customer.activated", wantState: "ACTIVE"},
		{name: "deactivate", setup: active, method: "POST", action: "deactivate",
			body: func(v int) string { return fmt.Sprintf(`{"expectedVersion":%d}`, v) }, event: "customer.deactivated", wantState: "DEACTIVATED"},
		{name: "terminate", setup: active, method: "POST", action: "terminate",
			body: func(v int) string {
				return fmt.Sprintf(`{"expectedVersion":%d,"retention":{"strategy":"TEMPORARY","period":1}}`, v)
			}, event: "customer.terminated", wantState: "TERMINATED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newTestAPI(t)
			started := time.Now()
			sameAsExpected, losers, details := 0, 0, map[string]int{}
			for round := range raceRounds {
				id, v := c.setup(t, a, fmt.Sprintf("same-%s-%d", c.name, round))
				creates := a.twilio.RouteCount(twiliotest.RouteCreate)
				updates := a.twilio.RouteCount(twiliotest.RouteUpdate)
				body := c.body(v)
				answers := make([]raceAnswer, raceN)
				racing.Release(raceN, func(i int) {
					answers[i] = a.send(t, req{method: c.method, path: "/v1/customers/" + id + "/" + c.action, key: a.key, body: body})
				})
				w := oneWinner(t, round, answers)
				if answers[w].Version != v+1 || answers[w].State != c.wantState {
					t.Fatalf("round %d: winner answered %s", round, answers[w])
				}
				sameAsExpected += staleDetails(answers, v, details)
				losers += raceN - 1
				cust := a.getCustomer(t, id)
				wantCustomer(t, cust, c.wantState, v+1)
				evs := a.eventsOf(t, id, v+1)
				if n, vs := countType(evs, c.event); n != 1 || vs[0] != v+1 {
					t.Fatalf("round %d: %d %s events (versions %v), want one at %d", round, n, c.event, vs, v+1)
				}
				// At Twilio: one side effect, whoever lost.
				subs := a.subaccountsOf(id)
				switch c.action {
				case "activate":
					if len(subs) != 1 || a.twilio.RouteCount(twiliotest.RouteCreate)-creates != 1 {
						t.Fatalf("round %d: %d sub-accounts for the customer, %d created in the race; want 1",
							round, len(subs), a.twilio.RouteCount(twiliotest.RouteCreate)-creates)
					}
					if tw := cust["twilio"].(map[string]any); tw["accountSid"] != subs[0].SID || subs[0].Status != "active" {
						t.Fatalf("round %d: customer's sub-account %v, Twilio holds %+v", round, tw, subs[0])
					}
				case "deactivate", "terminate":
					want := map[string]string{"deactivate": "suspended", "terminate": "closed"}[c.action]
					if len(subs) != 1 || subs[0].Status != want {
						t.Fatalf("round %d: sub-accounts %+v, want one %s", round, subs, want)
					}
					if n := a.twilio.RouteCount(twiliotest.RouteUpdate) - updates; n != 1 {
						t.Fatalf("round %d: %d sub-account updates at Twilio in the race, want 1", round, n)
					}
				case "contact-info":
					if n := a.twilio.RouteCount(twiliotest.RouteUpdate) - updates; n != 0 {
						t.Fatalf("round %d: %d sub-account updates at Twilio for contact info", round, n)
					}
				}
			}
			t.Logf("%d rounds of %d in %v; %d of %d version_conflict details give the expected version as the current one; details: %v",
				raceRounds, raceN, time.Since(started).Round(time.Millisecond), sameAsExpected, losers, details)
		})
	}
}

// TestRaceAnyVersionLosesNothing: 24 contact-info changes at "any" (or no)
// expectedVersion all apply, one version each.
func TestRaceAnyVersionLosesNothing(t *testing.T) {
	for _, c := range []struct{ name, version string }{{"any", `"any"`}, {"omitted", ""}} {
		t.Run(c.name, func(t *testing.T) {
			a := newTestAPI(t)
			started := time.Now()
			body := fmt.Sprintf(contactBody, `"any"`)
			if c.version == "" {
				body = strings.Replace(body, `"expectedVersion":"any",`, "", 1)
				if strings.Contains(body, "expectedVersion") {
					t.Fatal("body still has expectedVersion")
				}
			}
			for round := range raceRounds / 2 {
				id := a.activeAt(t, fmt.Sprintf("any-%s-%d", c.name, round))
				answers := make([]raceAnswer, raceN)
				racing.Release(raceN, func(i int) {
					answers[i] = a.send(t, req{method: "PUT", path: "/v1/customers/" + id + "/contact-info", key: a.key, body: body})
				})
				seen := map[int]bool{}
				for _, r := range answers {
					if r.Err != nil || r.Status != 200 || r.State != "ACTIVE" {
						t.Fatalf("round %d: answers %v, want %d × 200; e.g. %s", round, tally(answers), raceN, firstOdd(answers))
					}
					seen[r.Version] = true
				}
				if len(seen) != raceN {
					t.Fatalf("round %d: %d distinct versions in %d answers: %v", round, len(seen), raceN, versionsOf(answers))
				}
				for v := 3; v < 3+raceN; v++ {
					if !seen[v] {
						t.Fatalf("round %d: versions %v, want 3..%d", round, versionsOf(answers), 2+raceN)
					}
				}
				wantCustomer(t, a.getCustomer(t, id), "ACTIVE", 2+raceN)
				evs := a.eventsOf(t, id, 2+raceN)
				if n, _ := countType(evs, "customer.contact_info_updated"); n != raceN {
					t.Fatalf("round %d: %d contact_info_updated events, want %d", round, n, raceN)
				}
			}
			t.Logf("%d rounds of %d in %v", raceRounds/2, raceN, time.Since(started).Round(time.Millisecond))
		})
	}
}

func firstOdd(answers []raceAnswer) string {
	for _, r := range answers {
		if r.Err != nil || r.Status != 200 {
			return r.String()
		}
	}
	return ""
}

func versionsOf(answers []raceAnswer) []int {
	var vs []int
	for _, r := range answers {
		vs = append(vs, r.Version)
	}
	sort.Ints(vs)
	return vs
}

// farFuture is a purge time at which every TEMPORARY retention the tests
// set has run out.
func farFuture() time.Time { return time.Now().AddDate(10, 0, 0) }

// purgeAll runs one purge and returns its results by customer.
func purgeAll(t *testing.T, a *testAPI) (tenants.PurgeSummary, map[string]tenants.PurgeResult) {
	t.Helper()
	got := map[string]tenants.PurgeResult{}
	sum, err := a.svc.Purge(t.Context(), tenants.PurgeOptions{Now: farFuture()}, func(r tenants.PurgeResult) {
		if _, dup := got[r.CustomerID]; dup {
			t.Errorf("purge reported %s twice", r.CustomerID)
		}
		got[r.CustomerID] = r
	})
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	return sum, got
}

// TestRaceDeactivateVsTerminate: deactivate and terminate of one ACTIVE
// customer from the same version: one wins, and the state, the audit trail,
// Twilio and the purge all agree with the winner.
func TestRaceDeactivateVsTerminate(t *testing.T) {
	for _, c := range []struct {
		name   string
		n      int // goroutines: the first half deactivate, the others terminate
		rounds int
	}{{"pair", 2, 2 * raceRounds}, {"12+12", raceN, raceRounds}} {
		t.Run(c.name, func(t *testing.T) {
			a := newTestAPI(t)
			started := time.Now()
			wins := map[string]int{}
			for round := range c.rounds {
				id := a.activeAt(t, fmt.Sprintf("dvt-%d-%d", c.n, round))
				const v = 2
				answers := make([]raceAnswer, c.n)
				racing.Release(c.n, func(i int) {
					if i < c.n/2 {
						answers[i] = a.send(t, req{method: "POST", path: "/v1/customers/" + id + "/deactivate", key: a.key,
							body: fmt.Sprintf(`{"expectedVersion":%d}`, v)})
					} else {
						answers[i] = a.send(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
							body: fmt.Sprintf(`{"expectedVersion":%d,"retention":{"strategy":"TEMPORARY","period":1}}`, v)})
					}
				})
				w := oneWinner(t, round, answers)
				want, event, twilioStatus := "DEACTIVATED", "customer.deactivated", "suspended"
				if w >= c.n/2 {
					want, event, twilioStatus = "TERMINATED", "customer.terminated", "closed"
				}
				wins[want]++
				if answers[w].State != want || answers[w].Version != v+1 {
					t.Fatalf("round %d: winner (%d) answered %s", round, w, answers[w])
				}
				wantCustomer(t, a.getCustomer(t, id), want, v+1)
				evs := a.eventsOf(t, id, v+1)
				nd, _ := countType(evs, "customer.deactivated")
				nt, _ := countType(evs, "customer.terminated")
				if nd+nt != 1 || evs[v].Type != event {
					t.Fatalf("round %d: %s won, events %+v", round, want, evs)
				}
				if subs := a.subaccountsOf(id); len(subs) != 1 || subs[0].Status != twilioStatus {
					t.Fatalf("round %d: %s won, Twilio holds %+v", round, want, subs)
				}
				sum, res := purgeAll(t, a)
				if sum.Failed != 0 {
					t.Fatalf("round %d: purge failed: %+v %+v", round, sum, res)
				}
				if want == "TERMINATED" {
					if r, ok := res[id]; !ok || r.Outcome != tenants.OutcomeShredded || sum.Due != 1 || sum.Shredded != 1 {
						t.Fatalf("round %d: terminated customer, purge %+v %+v", round, sum, res)
					}
					wantCustomer(t, a.getCustomer(t, id), "SHREDDED", v+2)
					evs := a.eventsOf(t, id, v+2)
					if n, vs := countType(evs, "customer.shredded"); n != 1 || vs[0] != v+2 {
						t.Fatalf("round %d: shredded events %v", round, vs)
					}
				} else if sum.Due != 0 {
					t.Fatalf("round %d: deactivated customer, purge %+v %+v", round, sum, res)
				}
			}
			t.Logf("%d rounds of %d: winners %v, in %v", c.rounds, c.n, wins, time.Since(started).Round(time.Millisecond))
		})
	}
}

// TestRacePurges: purges racing each other, and a NO_RETENTION terminate,
// shred each due customer exactly once.
func TestRacePurges(t *testing.T) {
	const due = 4 // TERMINATED customers due per round
	for _, c := range []struct {
		name        string
		purges      int
		noRetention bool
		rounds      int
	}{{"two purges", 2, false, raceRounds / 2}, {"purges and a NO_RETENTION terminate", 2, true, raceRounds}} {
		t.Run(c.name, func(t *testing.T) {
			a := newTestAPI(t)
			started := time.Now()
			purgeWins, termWins := 0, 0
			for round := range c.rounds {
				var ids []string
				for k := range due {
					id := a.activeAt(t, fmt.Sprintf("purge-%t-%d-%d", c.noRetention, round, k))
					r := a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key,
						body: `{"expectedVersion":2,"retention":{"strategy":"TEMPORARY","period":1}}`})
					if r.Status != 200 {
						t.Fatalf("terminate: %d %s", r.Status, r.Raw)
					}
					wantCustomer(t, r.Body, "TERMINATED", 3)
					ids = append(ids, id)
				}
				victim := ""
				if c.noRetention {
					victim = a.activeAt(t, fmt.Sprintf("purge-victim-%d", round))
				}
				var mu sync.Mutex
				var results []tenants.PurgeResult
				var runErrs []error
				var term raceAnswer
				termDone := make(chan struct{})
				n := c.purges
				if c.noRetention {
					n++
				}
				racing.Release(n, func(i int) {
					if i == c.purges {
						defer close(termDone)
						term = a.send(t, req{method: "POST", path: "/v1/customers/" + victim + "/terminate", key: a.key,
							body: `{"expectedVersion":2,"retention":{"strategy":"NO_RETENTION"}}`})
						return
					}
					// With a terminate in the race, purge again and again until
					// it has answered, so a purge meets its customer half-way.
					for {
						_, err := a.svc.Purge(t.Context(), tenants.PurgeOptions{Now: farFuture()}, func(r tenants.PurgeResult) {
							mu.Lock()
							results = append(results, r)
							mu.Unlock()
						})
						if err != nil {
							mu.Lock()
							runErrs = append(runErrs, err)
							mu.Unlock()
						}
						if !c.noRetention {
							return
						}
						select {
						case <-termDone:
							return
						default:
						}
					}
				})
				if len(runErrs) > 0 {
					t.Fatalf("round %d: purge runs failed: %v", round, runErrs)
				}
				shredded := map[string]int{}
				for _, r := range results {
					if r.Outcome != tenants.OutcomeShredded {
						t.Fatalf("round %d: purge result %+v (error %v)", round, r, r.Err)
					}
					shredded[r.CustomerID]++
				}
				for _, id := range ids {
					if shredded[id] != 1 {
						t.Fatalf("round %d: customer %s reported shredded %d times: %+v", round, id, shredded[id], results)
					}
					wantCustomer(t, a.getCustomer(t, id), "SHREDDED", 4)
					evs := a.eventsOf(t, id, 4)
					if n, vs := countType(evs, "customer.shredded"); n != 1 || vs[0] != 4 {
						t.Fatalf("round %d: %d shredded events (versions %v)", round, n, vs)
					}
				}
				if c.noRetention {
					if term.Err != nil || term.Status != 200 || term.State != "SHREDDED" || term.Version != 4 {
						t.Fatalf("round %d: NO_RETENTION terminate answered %s, want 200 SHREDDED v4", round, term)
					}
					switch shredded[victim] {
					case 0:
						termWins++
					case 1:
						purgeWins++
					default:
						t.Fatalf("round %d: the NO_RETENTION customer reported shredded %d times by purges", round, shredded[victim])
					}
					wantCustomer(t, a.getCustomer(t, victim), "SHREDDED", 4)
					evs := a.eventsOf(t, victim, 4)
					if evs[2].Type != "customer.terminated" || evs[3].Type != "customer.shredded" {
						t.Fatalf("round %d: NO_RETENTION events %+v", round, evs)
					}
					if subs := a.subaccountsOf(victim); len(subs) != 1 || subs[0].Status != "closed" {
						t.Fatalf("round %d: NO_RETENTION customer's sub-accounts %+v", round, subs)
					}
				}
				if len(shredded) != len(ids)+map[bool]int{true: 1, false: 0}[shredded[victim] > 0] {
					t.Fatalf("round %d: purges shredded %v, want only %v (and the NO_RETENTION one)", round, shredded, ids)
				}
				// Nothing is left for a later purge.
				if sum, res := purgeAll(t, a); sum.Due != 0 || sum.Failed != 0 {
					t.Fatalf("round %d: a later purge still finds %+v %+v", round, sum, res)
				}
			}
			t.Logf("%d rounds in %v", c.rounds, time.Since(started).Round(time.Millisecond))
			if c.noRetention {
				t.Logf("the NO_RETENTION customer was shredded by its terminate %d times, by a racing purge %d times", termWins, purgeWins)
			}
		})
	}
}
