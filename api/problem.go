package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/webhooks"
)

// problem is an RFC 9457 problem document, as API.md shapes it.
type problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail"`
	Instance  string         `json:"instance"`
	Code      string         `json:"code"`
	RequestID string         `json:"requestId"`
	Errors    []problemField `json:"errors,omitempty"`
}

type problemField struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// httpError is an error the HTTP layer itself raises (decoding, limits,
// authentication): it carries its status, code and fields.
type httpError struct {
	status int
	code   string
	detail string
	fields []problemField
}

func (e *httpError) Error() string { return e.code + ": " + e.detail }

func badRequest(field, message string) error {
	e := &httpError{status: http.StatusBadRequest, code: "malformed_request", detail: "The request body is not valid JSON for this route."}
	if field != "" {
		e.detail = "The request body is malformed at " + field + ": " + message + "."
		e.fields = []problemField{{Field: field, Message: message}}
	}
	return e
}

// badQuery is a query parameter the route cannot take at all (400).
func badQuery(name, message string) error {
	return &httpError{status: http.StatusBadRequest, code: "malformed_request",
		detail: "The query parameter " + name + " " + message + ".", fields: []problemField{{Field: name, Message: message}}}
}

func invalidQuery(field, message string) error { return switchboard.Invalid(field, message) }

var (
	errPayloadTooLarge = &httpError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", detail: "The request body exceeds 1 MiB."}
	errMediaType       = &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", detail: "Requests with a body must be application/json."}
	errNoRoute         = &httpError{status: http.StatusNotFound, code: "not_found", detail: "No such route."}
	errNoMethod        = &httpError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", detail: "The route does not take this method."}
	errRateLimited     = &httpError{status: http.StatusTooManyRequests, code: "rate_limited", detail: "Too many requests: slow down and retry after the time in Retry-After."}
	errFormType        = &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", detail: "Twilio webhooks must be application/x-www-form-urlencoded."}
	errNotReady        = &httpError{status: http.StatusServiceUnavailable, code: "not_ready", detail: "The service is not ready."}
)

// sentinels maps domain sentinels to problems: the one table.
var sentinels = []struct {
	err    error
	status int
	code   string
	detail string
}{
	{tenants.ErrNotFound, http.StatusNotFound, "not_found", "No such resource."},
	{switchboard.ErrVersionConflict, http.StatusConflict, "version_conflict", ""},
	{tenants.ErrInvalidTransition, http.StatusConflict, "invalid_transition", ""},
	{tenants.ErrSpaceTaken, http.StatusConflict, "space_taken", "The space is taken."},
	{tenants.ErrDataShredded, http.StatusGone, "data_shredded", "The customer's data has been shredded and can never be read again."},
	{tenants.ErrUnauthorized, http.StatusUnauthorized, "unauthorized", "A valid API key is required: Authorization: Bearer <key>."},
	{tenants.ErrUpstreamUnavailable, http.StatusServiceUnavailable, "upstream_unavailable", "Twilio is unavailable; nothing was changed. Retry later."},
	{tenants.ErrTwilioSubaccountLimit, http.StatusConflict, "twilio_subaccount_limit", "Twilio's sub-account limit for the platform is reached (Twilio error 21480)."},
	{tenants.ErrSubaccountMissing, http.StatusBadGateway, "twilio_subaccount_missing", "Twilio no longer knows the customer's sub-account; nothing was changed. Contact support."},
	{tenants.ErrNotShredded, http.StatusConflict, "not_shredded", "The customer is not SHREDDED yet: its erasure certificate is issued by the shred."},
	{tenants.ErrBusy, http.StatusConflict, "change_in_progress", "Another change of this customer is in progress; nothing was changed. Retry shortly."},
	{tokens.ErrInvalidToken, http.StatusUnauthorized, "unauthorized", "A valid access token is required: Authorization: Bearer <JWT>."},
	// A token of a customer that is not ACTIVE is refused (403); any other
	// call that needs an ACTIVE customer conflicts with its state (409).
	{tokens.ErrRefusedNotActive, http.StatusForbidden, "customer_not_active", "The token's customer is not ACTIVE."},
	{switchboard.ErrCustomerNotActive, http.StatusConflict, "customer_not_active", "The customer is not ACTIVE."},
	{contacts.ErrNotFound, http.StatusNotFound, "not_found", "No such resource."},
	{contacts.ErrUniqueConflict, http.StatusConflict, "conflict", "Another contact already has this email, phone, crmId or externalId."},
	{messages.ErrNotFound, http.StatusNotFound, "not_found", "No such resource."},
	{messages.ErrNumberNotFound, http.StatusNotFound, "not_found", "No such resource."},
	{messages.ErrNoSenderNumber, http.StatusConflict, "no_sender_number", "The customer has no phone number to send from: buy one first."},
	{messages.ErrRecipientOptedOut, http.StatusConflict, "recipient_opted_out", "The recipient opted out of messages from this customer; nothing was sent."},
	{messages.ErrOptedOutBySMS, http.StatusConflict, "opted_out_by_sms", "The person opted out by text message: only they can opt back in, by texting START, YES or UNSTOP."},
	{messages.ErrNumberUnavailable, http.StatusConflict, "number_unavailable", "The phone number is not available (Twilio error 21422 or 21452)."},
	{messages.ErrWebhookForbidden, http.StatusForbidden, "forbidden", "The callback's signature or AccountSid is not accepted."},
	{webhooks.ErrNotFound, http.StatusNotFound, "not_found", "No such resource."},
	{webhooks.ErrLimitReached, http.StatusConflict, "limit_reached", "The caller has 20 webhook endpoints already: delete one first."},
	{webhooks.ErrInvalidTransition, http.StatusConflict, "invalid_transition", "Only a failed delivery can be retried."},
	{idempotency.ErrInProgress, http.StatusConflict, "idempotency_in_progress", "A request with this Idempotency-Key is still being processed."},
	{switchboard.ErrIdempotencyKeyReused, http.StatusUnprocessableEntity, "idempotency_key_reused", "This Idempotency-Key was used with another request."},
}

// toProblem maps any error to its problem document. Unknown errors are 500
// with a fixed detail: internal error text never reaches a client.
func toProblem(err error) (problem, bool) {
	var he *httpError
	if errors.As(err, &he) {
		return problem{Status: he.status, Code: he.code, Detail: he.detail, Errors: he.fields}, true
	}
	var verr *switchboard.ValidationError
	if errors.As(err, &verr) && len(verr.Fields) > 0 {
		fields := make([]problemField, len(verr.Fields))
		names := make([]string, len(verr.Fields))
		for i, f := range verr.Fields {
			fields[i] = problemField{Field: f.Field, Message: f.Message}
			names[i] = f.Field + " " + f.Message
		}
		return problem{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Detail: "The request breaks a rule: " + strings.Join(names, "; ") + ".", Errors: fields}, true
	}
	if errors.Is(err, idempotency.ErrInvalidKey) {
		return problem{Status: http.StatusUnprocessableEntity, Code: "validation_failed", Detail: "The Idempotency-Key header is invalid.",
			Errors: []problemField{{Field: "Idempotency-Key", Message: "must be 1 to 255 printable ASCII characters"}}}, true
	}
	var twe *messages.TwilioError
	if errors.As(err, &twe) {
		return problem{Status: http.StatusBadGateway, Code: "twilio_refused",
			Detail: fmt.Sprintf("Twilio refused the request (Twilio error %d); nothing was changed.", twe.Code)}, true
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			p := problem{Status: s.status, Code: s.code, Detail: s.detail}
			var vc *switchboard.VersionConflictError
			var te *tenants.TransitionError
			var ite *tokens.InvalidTokenError
			switch {
			case errors.As(err, &ite):
				p.Detail = "The access token failed the " + ite.Check + " check: send a valid token as Authorization: Bearer <JWT>."
			case errors.As(err, &vc):
				p.Detail = fmt.Sprintf("The resource changed: its current version is %d.", vc.Current)
			case errors.As(err, &te):
				p.Detail = fmt.Sprintf("Cannot %s a customer in status %s.", te.Action, te.From)
			}
			return p, true
		}
	}
	return problem{Status: http.StatusInternalServerError, Code: "internal_error", Detail: "An internal error occurred. It has been logged with the request id."}, false
}

// writeProblem answers err as a problem document and stops the chain.
func writeProblem(c *gin.Context, err error) {
	p, known := toProblem(err)
	if !known {
		logger(c).ErrorContext(c.Request.Context(), "request failed", "requestId", requestID(c), "route", c.FullPath(), "err", err)
	}
	p.Type = "/docs#problem-" + p.Code
	p.Title = http.StatusText(p.Status)
	p.Instance = c.Request.URL.Path
	p.RequestID = requestID(c)
	switch p.Status {
	case http.StatusUnauthorized:
		if errors.Is(err, tokens.ErrInvalidToken) {
			c.Header("WWW-Authenticate", `Bearer realm="switchboard", error="invalid_token"`)
		} else {
			c.Header("WWW-Authenticate", `Bearer realm="switchboard"`)
		}
	case http.StatusServiceUnavailable:
		if c.Writer.Header().Get("Retry-After") == "" {
			c.Header("Retry-After", "5")
		}
	}
	c.Header("Content-Type", "application/problem+json")
	c.Abort()
	c.Status(p.Status)
	if err := jsonWrite(c.Writer, p); err != nil {
		logger(c).WarnContext(c.Request.Context(), "write problem", "requestId", requestID(c), "err", err)
	}
}

func logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}
