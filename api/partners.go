package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/webhooks"
)

// partnerHandlers serve the partner admin API: decode, call the service,
// encode.
type partnerHandlers struct {
	svc      *tenants.Service
	contacts *contacts.Service
	webhooks *webhooks.Service
	cursors  cursors
}

func reply(c *gin.Context, status int, v any) {
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	if err := jsonWrite(c.Writer, v); err != nil {
		logger(c).WarnContext(c.Request.Context(), "write answer", "requestId", requestID(c), "err", err)
	}
}

func (h partnerHandlers) industries(c *gin.Context) {
	var items []industryJSON
	for _, in := range tenants.Industries() {
		items = append(items, industryJSON{ID: in.ID, Code: in.Code, Name: in.Name})
	}
	reply(c, http.StatusOK, newList(items, ""))
}

func (h partnerHandlers) register(c *gin.Context) {
	var req registerRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	cust, err := h.svc.Register(c.Request.Context(), partner(c), tenants.RegisterInput{
		Space: switchboard.Deref(req.Space), IndustryID: switchboard.Deref(req.IndustryID), Label: switchboard.Deref(req.Label), PartnerID: req.PartnerID,
	})
	if err != nil {
		writeProblem(c, err)
		return
	}
	setIdempotencyOwner(c, cust.ID)
	c.Header("Location", "/v1/customers/"+cust.ID)
	reply(c, http.StatusCreated, toCustomerJSON(cust))
}

func (h partnerHandlers) list(c *gin.Context) {
	limit, cursor, ok := h.cursors.page(c)
	if !ok {
		return
	}
	q := tenants.ListQuery{Limit: limit, Cursor: cursor}
	if s, ok := c.GetQuery("status"); ok {
		q.Status = tenants.Status(s)
		if !q.Status.Valid() {
			writeProblem(c, invalidQuery("status", "must be one of REGISTERED, ACTIVE, DEACTIVATED, TERMINATED, SHREDDED"))
			return
		}
	}
	custs, next, err := h.svc.Customers(c.Request.Context(), partner(c), q)
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, custs, h.cursors.seal(c, next), toCustomerJSON)
}

func (h partnerHandlers) get(c *gin.Context) {
	cust, err := h.svc.Customer(c.Request.Context(), partner(c), c.Param("id"))
	replyWith(c, cust, err, toCustomerJSON)
}

// decodeVersion reads {expectedVersion}; an empty body counts as {}.
func decodeVersion(c *gin.Context) (int64, error) {
	var req versionRequest
	if c.Request.ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return 0, err
		}
	}
	return req.ExpectedVersion.get()
}

type transition func(svc *tenants.Service, c *gin.Context, p tenants.Partner, id string, v int64) (tenants.Customer, error)

func (h partnerHandlers) transition(f transition) gin.HandlerFunc {
	return func(c *gin.Context) {
		v, err := decodeVersion(c)
		if err != nil {
			writeProblem(c, err)
			return
		}
		cust, err := f(h.svc, c, partner(c), c.Param("id"), v)
		if err != nil {
			writeProblem(c, err)
			return
		}
		reply(c, http.StatusOK, toCustomerJSON(cust))
	}
}

func activate(svc *tenants.Service, c *gin.Context, p tenants.Partner, id string, v int64) (tenants.Customer, error) {
	return svc.Activate(c.Request.Context(), p, id, v)
}

func deactivate(svc *tenants.Service, c *gin.Context, p tenants.Partner, id string, v int64) (tenants.Customer, error) {
	return svc.Deactivate(c.Request.Context(), p, id, v)
}

func (h partnerHandlers) contactInfo(c *gin.Context) {
	var req contactInfoRequest
	v, ok := decodeMutation(c, &req)
	if !ok {
		return
	}
	cust, err := h.svc.UpdateContactInfo(c.Request.Context(), partner(c), c.Param("id"), v, tenants.ContactInfoInput{
		BusinessName: req.BusinessName, SecondaryName: req.SecondaryName, PhoneNumber: req.PhoneNumber,
		AddressLine1: req.AddressLine1, AddressLine2: req.AddressLine2, PostalCode: req.PostalCode,
		Province: req.Province, Country: req.Country,
	})
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusOK, toCustomerJSON(cust))
}

func (h partnerHandlers) terminate(c *gin.Context) {
	var req terminateRequest
	v, ok := decodeMutation(c, &req)
	if !ok {
		return
	}
	if req.Retention == nil {
		writeProblem(c, invalidQuery("retention", "is required"))
		return
	}
	cust, err := h.svc.Terminate(c.Request.Context(), partner(c), c.Param("id"), v, tenants.RetentionInput{
		Strategy: switchboard.Deref(req.Retention.Strategy), Period: req.Retention.Period,
	})
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusOK, toCustomerJSON(cust))
}

func (h partnerHandlers) retention(c *gin.Context) {
	var req retentionChangeRequest
	v, ok := decodeMutation(c, &req)
	if !ok {
		return
	}
	cust, err := h.svc.ChangeRetention(c.Request.Context(), partner(c), c.Param("id"), v,
		tenants.RetentionInput{Strategy: switchboard.Deref(req.Strategy), Period: req.Period})
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusOK, toCustomerJSON(cust))
}

func (h partnerHandlers) certificate(c *gin.Context) {
	cert, claims, err := h.svc.ErasureCertificate(c.Request.Context(), partner(c), c.Param("id"))
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusOK, map[string]any{"certificate": cert, "claims": claims})
}

func (h partnerHandlers) events(c *gin.Context) {
	limit, cursor, ok := h.cursors.page(c)
	if !ok {
		return
	}
	evs, next, err := h.svc.Events(c.Request.Context(), partner(c), c.Param("id"), tenants.PageQuery{Limit: limit, Cursor: cursor})
	if err != nil {
		writeProblem(c, err)
		return
	}
	replyList(c, evs, h.cursors.seal(c, next), toEventJSON)
}
