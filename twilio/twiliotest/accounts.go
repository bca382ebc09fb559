package twiliotest

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The sub-account resources: Accounts.json (create, list) and
// Accounts/{Sid}.json (fetch, update).

// resource is a's JSON as Twilio shapes it.
func (s *Server) resource(a *Account) map[string]any {
	base := accountsPath + "/" + a.SID
	subs := map[string]string{}
	for _, r := range []string{"Addresses", "Applications", "AuthorizedConnectApps", "AvailablePhoneNumbers",
		"Calls", "Conferences", "ConnectApps", "IncomingPhoneNumbers", "Keys", "Messages", "Notifications",
		"OutgoingCallerIds", "Queues", "Recordings", "SigningKeys", "Transcriptions"} {
		subs[snake(r)] = base + "/" + r + ".json"
	}
	subs["balance"] = base + "/Balance.json"
	subs["usage"] = base + "/Usage.json"
	subs["sip"] = base + "/SIP.json"
	subs["short_codes"] = base + "/SMS/ShortCodes.json"
	return map[string]any{
		"auth_token":        a.AuthToken,
		"date_created":      twilioDate(a.Created),
		"date_updated":      twilioDate(a.Updated),
		"friendly_name":     a.FriendlyName,
		"owner_account_sid": s.master.SID,
		"sid":               a.SID,
		"status":            a.Status,
		"subresource_uris":  subs,
		"type":              "Full",
		"uri":               base + ".json",
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	open := 0
	for _, a := range s.accounts {
		if a.Status != "closed" {
			open++
		}
	}
	if open >= s.limit {
		s.mu.Unlock()
		twilioError(w, http.StatusBadRequest, 21480,
			"Sub-account limit reached: this account may not create more than "+strconv.Itoa(s.limit)+" sub-accounts. Contact Twilio Support to raise the limit.")
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	name := r.PostForm.Get("FriendlyName")
	if name == "" {
		name = "SubAccount Created at " + now.Format("2006-01-02 03:04 PM")
	}
	a := &Account{SID: "AC" + randomHex(16), AuthToken: randomHex(16), FriendlyName: name, Status: "active", Created: now, Updated: now}
	s.accounts = append(s.accounts, a)
	s.creates++
	lost := s.loseCreate
	s.loseCreate = false
	res := s.resource(a)
	s.mu.Unlock()

	if lost {
		// The account exists; the caller never hears of it.
		lose(w)
		return
	}
	writeJSON(w, http.StatusCreated, res)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filters := url.Values{}
	for _, k := range []string{"FriendlyName", "Status"} {
		if v := q.Get(k); v != "" {
			filters.Set(k, v)
		}
	}
	name, status := filters.Get("FriendlyName"), filters.Get("Status")

	s.mu.Lock()
	var all []map[string]any
	var sids []string
	for _, a := range append([]*Account{&s.master}, s.accounts...) {
		if (name != "" && a.FriendlyName != name) || (status != "" && a.Status != status) {
			continue
		}
		all = append(all, s.resource(a))
		sids = append(sids, a.SID)
	}
	s.mu.Unlock()
	s.writePage(w, r, accountsPath+".json", "accounts", filters, all, sids, false)
}

// account serves one account: fetch, or update its Status and FriendlyName.
func (s *Server) account(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a *Account
	if sid == s.master.SID {
		a = &s.master
	}
	for _, x := range s.accounts {
		if x.SID == sid {
			a = x
		}
	}
	if a == nil {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+accountsPath+"/"+sid+".json was not found")
		return
	}
	if r.Method == http.MethodPost {
		status, name := r.PostForm.Get("Status"), r.PostForm.Get("FriendlyName")
		switch {
		case status != "" && status != "active" && status != "suspended" && status != "closed":
			twilioError(w, http.StatusBadRequest, 20001, "Invalid Status: must be active, suspended or closed")
			return
		case a.Status == "closed":
			twilioError(w, http.StatusBadRequest, 21100, "Cannot update account "+sid+": it is closed, and a closed account cannot be reopened")
			return
		case a == &s.master && status != "" && status != a.Status:
			twilioError(w, http.StatusBadRequest, 21100, "Cannot change the status of the main account")
			return
		}
		if status != "" {
			a.Status = status
		}
		if name != "" {
			a.FriendlyName = name
		}
		a.Updated = s.now().UTC().Truncate(time.Second)
	}
	writeJSON(w, http.StatusOK, s.resource(a))
}
