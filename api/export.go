package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"filippo.io/age"
	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/webhooks"
)

type exportRequest struct {
	Recipient *string `json:"recipient"`
}

// writeLine writes one JSON line of an export: {"kind":…, and the fields
// of v as the API shows them}.
func writeLine(w io.Writer, kind string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sep := ","
	if len(b) == 2 { // {}
		sep = ""
	}
	line := append([]byte(`{"kind":`+strconv.Quote(kind)+sep), b[1:]...)
	_, err = w.Write(append(line, '\n'))
	return err
}

// export streams one of the partner's customers (its customer record,
// contacts, timeline and events) as JSON lines into age, encrypted to the
// request's recipient alone: no plaintext buffer or file, constant memory.
// Once the stream has started, a failure can only cut it short (the age
// stream then fails to authenticate at its end); it is logged.
func (h partnerHandlers) export(c *gin.Context) {
	var req exportRequest
	if err := decodeJSON(c, &req); err != nil {
		writeProblem(c, err)
		return
	}
	x, err := h.svc.BeginExport(c.Request.Context(), partner(c), c.Param("id"), switchboard.Deref(req.Recipient))
	if err != nil {
		writeProblem(c, err)
		return
	}
	c.Header("Content-Type", "application/age")
	c.Header("Content-Disposition", `attachment; filename="`+x.Customer.Space+`.jsonl.age"`)
	c.Status(http.StatusOK)
	if err := h.writeExport(c, x); err != nil {
		logger(c).ErrorContext(c.Request.Context(), "export cut short", "requestId", requestID(c), "customerId", x.Customer.ID, "err", err)
		return
	}
	if err := h.svc.RecordExport(c.Request.Context(), x); err != nil {
		logger(c).ErrorContext(c.Request.Context(), "record export", "requestId", requestID(c), "customerId", x.Customer.ID, "err", err)
	}
}

func (h partnerHandlers) writeExport(c *gin.Context, x *tenants.Export) error {
	ctx := c.Request.Context()
	w, err := age.Encrypt(c.Writer, x.Recipient)
	if err != nil {
		return err
	}
	if err := writeLine(w, "customer", toCustomerJSON(x.Customer)); err != nil {
		return err
	}
	ct, err := h.contacts.OpenWith(ctx, x.Customer.ID, x.Cipher)
	if err != nil {
		return err
	}
	if err := ct.Each(ctx, func(v contacts.Contact) error { return writeLine(w, "contact", toContactJSON(v)) }); err != nil {
		return err
	}
	if err := ct.EachTimelineItem(ctx, func(contactID string, it contacts.TimelineItem) error {
		item := toTimelineJSON(it)
		item["contactId"] = contactID
		return writeLine(w, "timeline", item)
	}); err != nil {
		return err
	}
	if h.webhooks != nil {
		// The customer's apps' endpoints, never a secret.
		eps, err := h.webhooks.List(ctx, webhooks.Customer(x.Customer.ID))
		if err != nil {
			return err
		}
		for _, e := range eps {
			if err := writeLine(w, "webhook_endpoint", toEndpointJSON(e)); err != nil {
				return err
			}
		}
	}
	if err := h.svc.EachEvent(ctx, partner(c), x.Customer.ID, func(e tenants.Event) error {
		return writeLine(w, "event", toEventJSON(e))
	}); err != nil {
		return err
	}
	// Shredded meanwhile: the stream stays unfinished, so age refuses it as
	// a whole (its last chunk never comes).
	if err := h.svc.StillExportable(ctx, x); err != nil {
		return err
	}
	return w.Close()
}
