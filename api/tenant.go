package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
)

const (
	claimsKey = "switchboard.claims"
	handleKey = "switchboard.contacts"
)

// tenantAuth verifies a tenant app's JWT, and with it that the customer is
// ACTIVE. It opens nothing: the cheap refusals (rate limit, scope) come
// before openContacts.
func tenantAuth(tok *tokens.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw, ok := bearer(c)
		if !ok {
			writeProblem(c, &tokens.InvalidTokenError{Check: "malformed"})
			return
		}
		claims, err := tok.Verify(c.Request.Context(), raw)
		if err != nil {
			writeProblem(c, err)
			return
		}
		c.Set(claimsKey, claims)
		c.Next()
	}
}

// openContacts opens the verified customer's contacts for the handler.
func openContacts(cs *contacts.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		handle, err := cs.Open(c.Request.Context(), tenantClaims(c).CustomerID)
		if err != nil {
			writeProblem(c, err)
			return
		}
		c.Set(handleKey, handle)
		c.Next()
	}
}

func tenantClaims(c *gin.Context) tokens.Claims { return c.MustGet(claimsKey).(tokens.Claims) }

func contactsOf(c *gin.Context) *contacts.Handle { return c.MustGet(handleKey).(*contacts.Handle) }

// errMissingScope is a token without the scope a route needs (403, naming
// it).
func errMissingScope(scope string) error {
	return &httpError{status: http.StatusForbidden, code: "forbidden",
		detail: "The token lacks the scope " + scope + " that this route needs.",
		fields: []problemField{{Field: "scope", Message: "must include " + scope}}}
}

// scope refuses a token without the route's scope: GET needs :read, every
// other method the write scope; one never implies the other.
func scope(read, write string) gin.HandlerFunc {
	return func(c *gin.Context) {
		need := write
		if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
			need = read
		}
		if !tenantClaims(c).Has(need) {
			writeProblem(c, errMissingScope(need))
			return
		}
		c.Next()
	}
}

type tokenHandlers struct {
	tenants *tenants.Service
	tokens  *tokens.Service
}

func (h tokenHandlers) jwks(c *gin.Context) {
	keys, err := h.tokens.JWKS(c.Request.Context())
	if err != nil {
		writeProblem(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=300")
	reply(c, http.StatusOK, map[string]any{"keys": keys})
}

// mint issues a token for a user of one of the partner's customers.
func (h tokenHandlers) mint(c *gin.Context) {
	var req tokenRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	cust, err := h.tenants.Customer(c.Request.Context(), partner(c), c.Param("id"))
	if err != nil {
		writeProblem(c, err)
		return
	}
	t, err := h.tokens.Mint(c.Request.Context(), tokens.MintInput{CustomerID: cust.ID, Subject: switchboard.Deref(req.Subject), Scopes: req.Scopes, TTLSeconds: req.TTLSeconds})
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusCreated, tokenJSON{AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: t.ExpiresIn, ExpiresAt: wireTime(t.ExpiresAt)})
}

type contactHandlers struct {
	cursors  cursors
	messages *messages.Service // nil: no messaging
}

func (h contactHandlers) upsert(c *gin.Context) {
	var req upsertRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	items := make([]contacts.Input, len(req.Data))
	for i, d := range req.Data {
		items[i] = d.domain()
	}
	results, err := contactsOf(c).Upsert(c.Request.Context(), switchboard.Deref(req.Mode), switchboard.Deref(req.MatchBy), items)
	if err != nil {
		writeProblem(c, err)
		return
	}
	out := make([]resultJSON, len(results))
	for i, r := range results {
		out[i] = resultJSON{Index: r.Index, ID: r.ID, Outcome: r.Outcome, Code: r.Code}
	}
	setIdempotencyOwner(c, tenantClaims(c).CustomerID)
	reply(c, http.StatusOK, map[string]any{"results": out})
}

// lookupParams are the exact lookups of GET /v1/contacts; at most one.
var lookupParams = []string{"email", "phone", "crmId", "externalId", "channel"}

func (h contactHandlers) list(c *gin.Context) {
	limit, cursor, ok := h.cursors.page(c)
	if !ok {
		return
	}
	q := contacts.Query{Limit: limit, Cursor: cursor, Lookups: map[string]string{}}
	for _, p := range lookupParams {
		if v, ok := c.GetQuery(p); ok {
			q.Lookups[p] = v
		}
	}
	list, next, err := contactsOf(c).Find(c.Request.Context(), q)
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, list, h.cursors.seal(c, next), toContactJSON)
}

func (h contactHandlers) get(c *gin.Context) {
	ct, err := contactsOf(c).Get(c.Request.Context(), c.Param("id"))
	replyWith(c, ct, err, toContactJSON)
}

func (h contactHandlers) patch(c *gin.Context) {
	var req patchRequest
	v, ok := decodeMutation(c, &req)
	if !ok {
		return
	}
	ct, err := contactsOf(c).Patch(c.Request.Context(), c.Param("id"), v, req.domain())
	replyWith(c, ct, err, toContactJSON)
}

func (ch contactHandlers) delete(c *gin.Context) {
	anonymize, given := c.GetQuery("anonymize")
	if (given && anonymize == "") || (anonymize != "true" && anonymize != "" && anonymize != "false") {
		writeProblem(c, invalidQuery("anonymize", "must be true or false"))
		return
	}
	// The contact's messages are erased with it (nil: no messaging here).
	var redact contacts.MessageEraser
	if ch.messages != nil {
		mh, err := ch.messages.Open(c.Request.Context(), tenantClaims(c).CustomerID)
		if err != nil {
			writeProblem(c, err)
			return
		}
		redact = mh.RedactParty
	}
	ct, err := contactsOf(c).Erase(c.Request.Context(), c.Param("id"), anonymize == "true", redact)
	if err != nil {
		writeProblem(c, err)
		return
	}
	if anonymize == "true" {
		reply(c, http.StatusOK, toContactJSON(ct))
		return
	}
	c.Status(http.StatusNoContent)
}

func (h contactHandlers) timeline(c *gin.Context) {
	limit, cursor, ok := h.cursors.page(c)
	if !ok {
		return
	}
	items, next, err := contactsOf(c).Timeline(c.Request.Context(), c.Param("id"), limit, cursor)
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, items, h.cursors.seal(c, next), toTimelineJSON)
}

func (h contactHandlers) event(c *gin.Context) {
	var req eventRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	ev := contacts.ExternalEvent{Type: switchboard.Deref(req.Type), Message: switchboard.Deref(req.Message), SourceURL: req.SourceURL, InitiatedBy: req.InitiatedBy}
	if req.OccurredAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *req.OccurredAt)
		if err != nil {
			writeProblem(c, invalidQuery("occurredAt", "must be an RFC 3339 time"))
			return
		}
		ev.OccurredAt = &t
	}
	it, err := contactsOf(c).AddEvent(c.Request.Context(), c.Param("id"), ev)
	if err != nil {
		writeProblem(c, err)
		return
	}
	setIdempotencyOwner(c, tenantClaims(c).CustomerID)
	reply(c, http.StatusCreated, toTimelineJSON(it))
}
