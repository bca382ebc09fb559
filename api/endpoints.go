package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/webhooks"
)

// endpointHandlers serve /v1/webhook-endpoints to tenant apps (a token)
// and partners (an API key) alike: the credential decides the owner.
type endpointHandlers struct {
	svc     *webhooks.Service
	cursors cursors
}

// eitherAuth authenticates a partner's API key or a tenant app's token
// (a JWT: three dot-separated parts) and, for a token, checks the route's
// webhooks scope: GET needs webhooks:read, the rest webhooks:write. The
// handler runs only after every check passed.
func eitherAuth(partners *tenants.Service, tok *tokens.Service) gin.HandlerFunc {
	asPartner := partnerAuth(partners)
	return func(c *gin.Context) {
		raw, ok := bearer(c)
		if !ok || strings.Count(raw, ".") != 2 {
			asPartner(c)
			return
		}
		claims, err := tok.Verify(c.Request.Context(), raw)
		if err != nil {
			writeProblem(c, err)
			return
		}
		need := tokens.WebhooksWrite
		if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
			need = tokens.WebhooksRead
		}
		if !claims.Has(need) {
			writeProblem(c, errMissingScope(need))
			return
		}
		c.Set(claimsKey, claims)
		c.Next()
	}
}

// owner is who the request's credential speaks for, and its scopes (nil
// for a partner).
func owner(c *gin.Context) (webhooks.Owner, []string) {
	if _, ok := c.Get(partnerKey); ok {
		return webhooks.Partner(partner(c).ID), nil
	}
	cl := tenantClaims(c)
	return webhooks.Customer(cl.CustomerID), cl.Scopes
}

type endpointRequest struct {
	ExpectedVersion expectedVersion  `json:"expectedVersion"`
	URL             *string          `json:"url"`
	Events          []string         `json:"events"`
	Description     optional[string] `json:"description"`
	Enabled         *bool            `json:"enabled"`
}

func (r *endpointRequest) expected() expectedVersion { return r.ExpectedVersion }

func (r *endpointRequest) input() webhooks.Input {
	in := webhooks.Input{URL: r.URL, Events: r.Events, Enabled: r.Enabled}
	if r.Description.set {
		in.Description = &r.Description.value // null clears it: ""
	}
	return in
}

type endpointJSON struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description *string  `json:"description"`
	Enabled     bool     `json:"enabled"`
	Secret      string   `json:"secret,omitempty"`
	CreatedAt   string   `json:"createdAt"`
	UpdatedAt   string   `json:"updatedAt"`
	Version     int64    `json:"version"`
}

func toEndpointJSON(e webhooks.Endpoint) endpointJSON {
	return endpointJSON{ID: e.ID, URL: e.URL, Events: e.Events, Description: e.Description, Enabled: e.Enabled,
		Secret: e.Secret, CreatedAt: wireTime(e.CreatedAt), UpdatedAt: wireTime(e.UpdatedAt), Version: e.Version}
}

type deliveryJSON struct {
	ID             string  `json:"id"`
	EventID        string  `json:"eventId"`
	EventType      string  `json:"eventType"`
	Status         string  `json:"status"`
	Attempts       int     `json:"attempts"`
	LastAttemptAt  *string `json:"lastAttemptAt"`
	NextAttemptAt  *string `json:"nextAttemptAt"`
	LastStatusCode *int    `json:"lastStatusCode"`
	LastError      *string `json:"lastError"`
	CreatedAt      string  `json:"createdAt"`
}

func toDeliveryJSON(d webhooks.Delivery) deliveryJSON {
	return deliveryJSON{ID: d.ID, EventID: d.EventID, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
		LastAttemptAt: wireTimePtr(d.LastAttemptAt), NextAttemptAt: wireTimePtr(d.NextAttemptAt),
		LastStatusCode: d.LastStatusCode, LastError: d.LastError, CreatedAt: wireTime(d.CreatedAt)}
}

func (h endpointHandlers) create(c *gin.Context) {
	var req endpointRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	switch {
	case req.ExpectedVersion.set:
		writeProblem(c, badRequest("expectedVersion", "is not a known field"))
		return
	case req.Enabled != nil:
		writeProblem(c, badRequest("enabled", "is not a known field"))
		return
	}
	o, scopes := owner(c)
	e, err := h.svc.Create(c.Request.Context(), o, req.input(), scopes)
	if err != nil {
		endpointProblem(c, err)
		return
	}
	reply(c, http.StatusCreated, toEndpointJSON(e))
}

func (h endpointHandlers) list(c *gin.Context) {
	o, _ := owner(c)
	es, err := h.svc.List(c.Request.Context(), o)
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, es, "", toEndpointJSON)
}

func (h endpointHandlers) get(c *gin.Context) {
	o, _ := owner(c)
	e, err := h.svc.Get(c.Request.Context(), o, c.Param("id"))
	replyWith(c, e, err, toEndpointJSON)
}

func (h endpointHandlers) patch(c *gin.Context) {
	var req endpointRequest
	v, ok := decodeMutation(c, &req)
	if !ok {
		return
	}
	o, scopes := owner(c)
	e, err := h.svc.Update(c.Request.Context(), o, c.Param("id"), v, req.input(), scopes)
	if err != nil {
		endpointProblem(c, err)
		return
	}
	reply(c, http.StatusOK, toEndpointJSON(e))
}

func (h endpointHandlers) delete(c *gin.Context) {
	o, _ := owner(c)
	if err := h.svc.Delete(c.Request.Context(), o, c.Param("id")); err != nil {
		writeProblem(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h endpointHandlers) rotate(c *gin.Context) {
	o, _ := owner(c)
	e, err := h.svc.Rotate(c.Request.Context(), o, c.Param("id"))
	replyWith(c, e, err, toEndpointJSON)
}

func (h endpointHandlers) test(c *gin.Context) {
	o, _ := owner(c)
	d, err := h.svc.Test(c.Request.Context(), o, c.Param("id"))
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusAccepted, toDeliveryJSON(d))
}

func (h endpointHandlers) deliveries(c *gin.Context) {
	limit, cursor, ok := h.cursors.page(c)
	if !ok {
		return
	}
	o, _ := owner(c)
	ds, next, err := h.svc.Deliveries(c.Request.Context(), o, c.Param("id"),
		webhooks.ListInput{Status: c.Query("status"), Limit: limit, After: cursor})
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, ds, h.cursors.seal(c, next), toDeliveryJSON)
}

func (h endpointHandlers) retry(c *gin.Context) {
	o, _ := owner(c)
	d, err := h.svc.Retry(c.Request.Context(), o, c.Param("id"), c.Param("deliveryId"))
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusAccepted, toDeliveryJSON(d))
}

// eventData is an event's data as the API shows the resource.
func eventData(v any) any {
	switch x := v.(type) {
	case messages.Message:
		return toMessageJSON(x)
	case messages.OptOut:
		return toOptOutJSON(x)
	case contacts.Contact:
		return toContactJSON(x)
	}
	return v
}

// problem is err as the endpoint routes answer it: a subscription the
// token's scopes do not allow is 403 naming the scope.
func endpointProblem(c *gin.Context, err error) {
	var se *webhooks.ScopeError
	if errors.As(err, &se) {
		err = errMissingScope(se.Scope)
	}
	writeProblem(c, err)
}
