package api

import (
	"net/http"
	"time"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/tenants"

	"github.com/gin-gonic/gin"
)

func wireTime(t time.Time) string { return switchboard.FormatTime(t) }

func wireTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := wireTime(*t)
	return &s
}

// list is every list answer: {"items": [...], "nextCursor": "..."|null}.
type list[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	l := list[T]{Items: items}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}

// replyList answers a page of domain values in their wire form.
func replyList[V, W any](c *gin.Context, page []V, next string, wire func(V) W) {
	items := make([]W, len(page))
	for i, v := range page {
		items[i] = wire(v)
	}
	reply(c, http.StatusOK, newList(items, next))
}

type customerJSON struct {
	ID            string           `json:"id"`
	PartnerID     string           `json:"partnerId"`
	Space         string           `json:"space"`
	Label         *string          `json:"label"`
	IndustryID    string           `json:"industryId"`
	Status        tenants.Status   `json:"status"`
	Version       int64            `json:"version"`
	ContactInfo   *contactInfoJSON `json:"contactInfo"`
	Twilio        *twilioJSON      `json:"twilio"`
	Retention     *retentionJSON   `json:"retention"`
	CreatedAt     string           `json:"createdAt"`
	UpdatedAt     string           `json:"updatedAt"`
	ActivatedAt   *string          `json:"activatedAt"`
	DeactivatedAt *string          `json:"deactivatedAt"`
	TerminatedAt  *string          `json:"terminatedAt"`
	ShreddedAt    *string          `json:"shreddedAt"`
}

type contactInfoJSON struct {
	BusinessName  string  `json:"businessName"`
	SecondaryName *string `json:"secondaryName"`
	PhoneNumber   *string `json:"phoneNumber"`
	AddressLine1  string  `json:"addressLine1"`
	AddressLine2  *string `json:"addressLine2"`
	PostalCode    string  `json:"postalCode"`
	Province      *string `json:"province"`
	Country       string  `json:"country"`
}

type twilioJSON struct {
	AccountSID string                   `json:"accountSid"`
	Status     tenants.SubaccountStatus `json:"status"`
}

type retentionJSON struct {
	Strategy tenants.Strategy `json:"strategy"`
	Period   *int             `json:"period"`
	ShredAt  *string          `json:"shredAt"`
}

func toCustomerJSON(c tenants.Customer) customerJSON {
	out := customerJSON{
		ID: c.ID, PartnerID: c.PartnerID, Space: c.Space, Label: c.Label, IndustryID: c.IndustryID,
		Status: c.Status, Version: c.Version,
		CreatedAt: wireTime(c.CreatedAt), UpdatedAt: wireTime(c.UpdatedAt),
		ActivatedAt: wireTimePtr(c.ActivatedAt), DeactivatedAt: wireTimePtr(c.DeactivatedAt),
		TerminatedAt: wireTimePtr(c.TerminatedAt), ShreddedAt: wireTimePtr(c.ShreddedAt),
	}
	if ci := c.ContactInfo; ci != nil {
		out.ContactInfo = &contactInfoJSON{
			BusinessName: ci.BusinessName, SecondaryName: ci.SecondaryName, PhoneNumber: ci.PhoneNumber,
			AddressLine1: ci.AddressLine1, AddressLine2: ci.AddressLine2, PostalCode: ci.PostalCode,
			Province: ci.Province, Country: ci.Country,
		}
	}
	if t := c.Twilio; t != nil {
		out.Twilio = &twilioJSON{AccountSID: t.AccountSID, Status: t.Status}
	}
	if r := c.Retention; r != nil {
		out.Retention = &retentionJSON{Strategy: r.Strategy, Period: r.Period, ShredAt: wireTimePtr(r.ShredAt)}
	}
	return out
}

type industryJSON struct {
	ID   string `json:"id"`
	Code string `json:"code"`
	Name string `json:"name"`
}

type eventJSON struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	At      string         `json:"at"`
	Version int64          `json:"version"`
	Data    map[string]any `json:"data"`
}

func toEventJSON(e tenants.Event) eventJSON {
	data := make(map[string]any, len(e.Data))
	for k, v := range e.Data {
		if t, ok := v.(time.Time); ok {
			v = wireTime(t)
		}
		data[k] = v
	}
	return eventJSON{ID: e.ID, Type: e.Type, At: wireTime(e.At), Version: e.Version, Data: data}
}

// Request bodies. Pointers tell an absent member from a zero one.

type registerRequest struct {
	Space      *string `json:"space"`
	IndustryID *string `json:"industryId"`
	Label      *string `json:"label"`
	PartnerID  *string `json:"partnerId"`
}

type versionRequest struct {
	ExpectedVersion expectedVersion `json:"expectedVersion"`
}

func (r *contactInfoRequest) expected() expectedVersion { return r.ExpectedVersion }

type contactInfoRequest struct {
	ExpectedVersion expectedVersion `json:"expectedVersion"`
	BusinessName    *string         `json:"businessName"`
	SecondaryName   *string         `json:"secondaryName"`
	PhoneNumber     *string         `json:"phoneNumber"`
	AddressLine1    *string         `json:"addressLine1"`
	AddressLine2    *string         `json:"addressLine2"`
	PostalCode      *string         `json:"postalCode"`
	Province        *string         `json:"province"`
	Country         *string         `json:"country"`
}

func (r *terminateRequest) expected() expectedVersion { return r.ExpectedVersion }

type terminateRequest struct {
	ExpectedVersion expectedVersion   `json:"expectedVersion"`
	Retention       *retentionRequest `json:"retention"`
}

// retentionChangeRequest is the body of PUT /v1/customers/{id}/retention.
func (r *retentionChangeRequest) expected() expectedVersion { return r.ExpectedVersion }

type retentionChangeRequest struct {
	ExpectedVersion expectedVersion `json:"expectedVersion"`
	Strategy        *string         `json:"strategy"`
	Period          *int            `json:"period"`
}

type retentionRequest struct {
	Strategy *string `json:"strategy"`
	Period   *int    `json:"period"`
}

// replyWith replies 200 with conv(v), or with the problem err names.
func replyWith[T, J any](c *gin.Context, v T, err error, conv func(T) J) {
	if err != nil {
		writeProblem(c, err)
		return
	}
	reply(c, http.StatusOK, conv(v))
}
