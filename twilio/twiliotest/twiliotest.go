// Package twiliotest is a Twilio test double: an HTTP server that speaks
// Twilio's REST wire format for the Accounts API (form-encoded requests,
// Basic auth with the master credentials, Twilio's JSON resources, list
// pages and error bodies), so the twilio-go adapter is exercised for real.
// It can fail on demand: error statuses, a lost answer, delays, Twilio's
// sub-account limit.
package twiliotest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Account is a sub-account as the double holds it.
type Account struct {
	SID          string
	AuthToken    string
	FriendlyName string
	Status       string
	Created      time.Time
}

// Server is a running Twilio double.
type Server struct {
	srv        *httptest.Server
	masterSID  string
	masterTok  string
	mu         sync.Mutex
	accounts   []*Account
	creates    int
	requests   int
	failNext   int
	failStatus int
	loseCreate bool
	delay      time.Duration
	limit      int
}

// NewServer starts a double that accepts the given master credentials; it
// stops when tb ends.
func NewServer(tb testing.TB, accountSID, authToken string) *Server {
	s := &Server{masterSID: accountSID, masterTok: authToken, limit: 1000}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the double's base URL, to use as the Twilio API URL.
func (s *Server) URL() string { return s.srv.URL }

// FailNext makes the next n requests answer status with a Twilio error body.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus = n, status
}

// LoseNextCreateAnswer makes the next sub-account creation happen at
// "Twilio" while its answer never reaches the caller (the connection is
// closed without a response).
func (s *Server) LoseNextCreateAnswer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseCreate = true
}

// SetDelay delays every answer by d.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetSubaccountLimit makes creating more than n sub-accounts fail with
// Twilio's error 21480. The default is Twilio's, 1000.
func (s *Server) SetSubaccountLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = n
}

// Accounts returns a copy of the sub-accounts, oldest first.
func (s *Server) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, len(s.accounts))
	for i, a := range s.accounts {
		out[i] = *a
	}
	return out
}

// CreateCount is how many sub-accounts were created.
func (s *Server) CreateCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creates
}

// Requests is how many requests reached the double.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func hexID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// twilioError writes an error in Twilio's JSON shape.
func twilioError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": message, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

func (s *Server) resource(a *Account) map[string]any {
	uri := "/2010-04-01/Accounts/" + a.SID + ".json"
	return map[string]any{
		"auth_token": a.AuthToken, "date_created": a.Created.Format(time.RFC1123Z), "date_updated": a.Created.Format(time.RFC1123Z),
		"friendly_name": a.FriendlyName, "owner_account_sid": s.masterSID, "sid": a.SID, "status": a.Status,
		"type": "Full", "uri": uri,
		"subresource_uris": map[string]string{
			"messages":               "/2010-04-01/Accounts/" + a.SID + "/Messages.json",
			"incoming_phone_numbers": "/2010-04-01/Accounts/" + a.SID + "/IncomingPhoneNumbers.json",
		},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	delay := s.delay
	fail := 0
	if s.failNext > 0 {
		s.failNext--
		fail = s.failStatus
	}
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != s.masterSID || pass != s.masterTok {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if fail != 0 {
		twilioError(w, fail, 20500+fail%100, http.StatusText(fail))
		return
	}
	if r.Method == http.MethodPost {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
			twilioError(w, http.StatusBadRequest, 20001, "Expected a form-encoded body")
			return
		}
		if err := r.ParseForm(); err != nil {
			twilioError(w, http.StatusBadRequest, 20001, "Malformed form body")
			return
		}
	}
	path := r.URL.Path
	switch {
	case path == "/2010-04-01/Accounts.json" && r.Method == http.MethodPost:
		s.create(w, r)
	case path == "/2010-04-01/Accounts.json" && r.Method == http.MethodGet:
		s.list(w, r)
	case strings.HasPrefix(path, "/2010-04-01/Accounts/") && strings.HasSuffix(path, ".json") && strings.Count(path, "/") == 3:
		sid := strings.TrimSuffix(strings.TrimPrefix(path, "/2010-04-01/Accounts/"), ".json")
		s.account(w, r, sid)
	default:
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+path+" was not found")
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if len(s.accounts) >= s.limit {
		s.mu.Unlock()
		twilioError(w, http.StatusBadRequest, 21480, "Reached maximum number of subaccounts: Sub-account limit reached")
		return
	}
	name := r.PostForm.Get("FriendlyName")
	if name == "" {
		name = "SubAccount Created at " + time.Now().UTC().Format("2006-01-02 15:04 MST")
	}
	a := &Account{SID: "AC" + hexID(16), AuthToken: hexID(16), FriendlyName: name, Status: "active", Created: time.Now().UTC().Truncate(time.Second)}
	s.accounts = append(s.accounts, a)
	s.creates++
	lose := s.loseCreate
	s.loseCreate = false
	res := s.resource(a)
	s.mu.Unlock()
	if lose {
		// The account exists; the caller never hears of it.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, http.StatusCreated, res)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	var items []map[string]any
	for _, a := range s.accounts {
		if n := q.Get("FriendlyName"); n != "" && a.FriendlyName != n {
			continue
		}
		if st := q.Get("Status"); st != "" && a.Status != st {
			continue
		}
		items = append(items, s.resource(a))
	}
	s.mu.Unlock()
	if items == nil {
		items = []map[string]any{}
	}
	pageSize := 50
	fmt.Sscan(q.Get("PageSize"), &pageSize)
	uri := "/2010-04-01/Accounts.json?" + q.Encode()
	writeJSON(w, http.StatusOK, map[string]any{
		"accounts": items, "page": 0, "page_size": pageSize, "start": 0, "end": max(len(items)-1, 0),
		"uri": uri, "first_page_uri": uri, "next_page_uri": nil, "previous_page_uri": nil,
	})
}

func (s *Server) account(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	var a *Account
	for _, x := range s.accounts {
		if x.SID == sid {
			a = x
		}
	}
	if a == nil {
		s.mu.Unlock()
		twilioError(w, http.StatusNotFound, 20404, "The requested resource /2010-04-01/Accounts/"+sid+".json was not found")
		return
	}
	if r.Method == http.MethodPost {
		if st := r.PostForm.Get("Status"); st != "" {
			switch {
			case st != "active" && st != "suspended" && st != "closed":
				s.mu.Unlock()
				twilioError(w, http.StatusBadRequest, 21218, "Invalid Status: "+st)
				return
			case a.Status == "closed" && st != "closed":
				s.mu.Unlock()
				twilioError(w, http.StatusBadRequest, 20005, "Closed accounts cannot be reopened")
				return
			}
			a.Status = st
		}
		if n := r.PostForm.Get("FriendlyName"); n != "" {
			a.FriendlyName = n
		}
	} else if r.Method != http.MethodGet {
		s.mu.Unlock()
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	res := s.resource(a)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, res)
}
