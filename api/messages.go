package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
)

const messagesKey = "switchboard.messages"

// openMessages opens the verified customer's messages for the handler.
func openMessages(ms *messages.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		h, err := ms.Open(c.Request.Context(), tenantClaims(c).CustomerID)
		if err != nil {
			writeProblem(c, err)
			return
		}
		c.Set(messagesKey, h)
		c.Next()
	}
}

func messagesOf(c *gin.Context) *messages.Handle { return c.MustGet(messagesKey).(*messages.Handle) }

type sendRequest struct {
	To        *string   `json:"to"`
	ContactID *string   `json:"contactId"`
	Body      *string   `json:"body"`
	From      *string   `json:"from"`
	MediaURLs *[]string `json:"mediaUrls"`
}

type messageJSON struct {
	ID           string   `json:"id"`
	Direction    string   `json:"direction"`
	From         string   `json:"from"`
	To           string   `json:"to"`
	ContactID    *string  `json:"contactId"`
	Body         *string  `json:"body"`
	MediaURLs    []string `json:"mediaUrls"`
	Status       string   `json:"status"`
	ErrorCode    *int     `json:"errorCode"`
	ErrorMessage *string  `json:"errorMessage"`
	TwilioSID    *string  `json:"twilioSid"`
	Segments     *int     `json:"segments"`
	Keyword      *string  `json:"keyword"`
	CreatedAt    string   `json:"createdAt"`
	UpdatedAt    string   `json:"updatedAt"`
	SentAt       *string  `json:"sentAt"`
	DeliveredAt  *string  `json:"deliveredAt"`
	RedactedAt   *string  `json:"redactedAt"`
}

func toMessageJSON(m messages.Message) messageJSON {
	return messageJSON{ID: m.ID, Direction: m.Direction, From: m.From, To: m.To, ContactID: m.ContactID,
		Body: m.Body, MediaURLs: m.MediaURLs, Status: m.Status, ErrorCode: m.ErrorCode, ErrorMessage: m.ErrorMessage,
		TwilioSID: m.TwilioSID, Segments: m.Segments, Keyword: m.Keyword,
		CreatedAt: wireTime(m.CreatedAt), UpdatedAt: wireTime(m.UpdatedAt),
		SentAt: wireTimePtr(m.SentAt), DeliveredAt: wireTimePtr(m.DeliveredAt), RedactedAt: wireTimePtr(m.RedactedAt)}
}

type messageHandlers struct{ cursors cursors }

// send accepts a message (202). It honours Idempotency-Key itself: the
// message's id is derived from the key, so its insert is the key's claim.
func (messageHandlers) send(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		writeProblem(c, err)
		return
	}
	var req sendRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	key, fp := "", []byte(nil)
	if keys, ok := c.Request.Header["Idempotency-Key"]; ok {
		if key = keys[0]; !idempotency.ValidKey(key) {
			writeProblem(c, idempotency.ErrInvalidKey)
			return
		}
		fp = idempotency.Fingerprint(c.Request.Method, c.Request.URL.Path, body)
	}
	in := messages.SendInput{To: req.To, ContactID: req.ContactID, Body: req.Body, From: req.From}
	if req.MediaURLs != nil {
		in.MediaURLs = *req.MediaURLs
		if in.MediaURLs == nil {
			in.MediaURLs = []string{}
		}
	}
	m, replayed, err := messagesOf(c).Send(c.Request.Context(), in, key, fp)
	if err != nil {
		writeProblem(c, err)
		return
	}
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/v1/messages/"+m.ID)
	reply(c, http.StatusAccepted, toMessageJSON(m))
}

func (h messageHandlers) list(c *gin.Context) {
	limit, cursor, ok := h.cursors.page(c)
	if !ok {
		return
	}
	q := messages.Query{Limit: limit, Cursor: cursor, ContactID: c.Query("contactId"), Direction: c.Query("direction"),
		Status: c.Query("status"), Phone: c.Query("phone")}
	page, next, err := messagesOf(c).List(c.Request.Context(), q)
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, page, h.cursors.seal(c, next), toMessageJSON)
}

func (messageHandlers) get(c *gin.Context) {
	m, err := messagesOf(c).Get(c.Request.Context(), c.Param("id"))
	replyWith(c, m, err, toMessageJSON)
}

func (messageHandlers) redact(c *gin.Context) {
	m, err := messagesOf(c).Redact(c.Request.Context(), c.Param("id"))
	replyWith(c, m, err, toMessageJSON)
}

type optOutJSON struct {
	Phone     string  `json:"phone"`
	OptedOut  bool    `json:"optedOut"`
	UpdatedAt *string `json:"updatedAt"`
	Source    *string `json:"source"`
}

type optOutRequest struct {
	OptedOut *bool   `json:"optedOut"`
	Source   *string `json:"source"`
}

func toOptOutJSON(o messages.OptOut) optOutJSON {
	return optOutJSON{Phone: o.Phone, OptedOut: o.OptedOut, UpdatedAt: wireTimePtr(o.UpdatedAt), Source: o.Source}
}

func (messageHandlers) optOut(c *gin.Context) {
	o, err := messagesOf(c).OptOut(c.Request.Context(), c.Param("phone"))
	replyWith(c, o, err, toOptOutJSON)
}

func (messageHandlers) setOptOut(c *gin.Context) {
	var req optOutRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	if req.OptedOut == nil {
		writeProblem(c, invalidQuery("optedOut", "is required"))
		return
	}
	o, err := messagesOf(c).SetOptOut(c.Request.Context(), c.Param("phone"), *req.OptedOut, switchboard.Deref(req.Source))
	replyWith(c, o, err, toOptOutJSON)
}

// Phone numbers (partner admin API).

type buyNumberRequest struct {
	PhoneNumber *string `json:"phoneNumber"`
	Country     *string `json:"country"`
	AreaCode    *string `json:"areaCode"`
}

type phoneNumberJSON struct {
	ID           string           `json:"id"`
	PhoneNumber  string           `json:"phoneNumber"`
	TwilioSID    string           `json:"twilioSid"`
	Capabilities capabilitiesJSON `json:"capabilities"`
	CreatedAt    string           `json:"createdAt"`
}

type capabilitiesJSON struct {
	SMS bool `json:"sms"`
	MMS bool `json:"mms"`
}

func toNumberJSON(n messages.PhoneNumber) phoneNumberJSON {
	return phoneNumberJSON{ID: n.ID, PhoneNumber: n.PhoneNumber, TwilioSID: n.TwilioSID,
		Capabilities: capabilitiesJSON{SMS: n.SMS, MMS: n.MMS}, CreatedAt: wireTime(n.CreatedAt)}
}

type numberHandlers struct{ svc *messages.Service }

func (h numberHandlers) buy(c *gin.Context) {
	var req buyNumberRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	n, err := h.svc.BuyNumber(c.Request.Context(), partner(c).ID, c.Param("id"),
		messages.BuyInput{PhoneNumber: req.PhoneNumber, Country: req.Country, AreaCode: req.AreaCode})
	if err != nil {
		writeProblem(c, err)
		return
	}
	setIdempotencyOwner(c, c.Param("id"))
	c.Header("Location", "/v1/customers/"+c.Param("id")+"/phone-numbers/"+n.ID)
	reply(c, http.StatusCreated, toNumberJSON(n))
}

func (h numberHandlers) list(c *gin.Context) {
	ns, err := h.svc.Numbers(c.Request.Context(), partner(c).ID, c.Param("id"))
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, ns, "", toNumberJSON)
}

func (h numberHandlers) release(c *gin.Context) {
	if err := h.svc.ReleaseNumber(c.Request.Context(), partner(c).ID, c.Param("id"), c.Param("numberId")); err != nil {
		writeProblem(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
