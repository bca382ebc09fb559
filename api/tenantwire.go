package api

import (
	"github.com/go-json-experiment/json"

	"github.com/switchboard/switchboard/contacts"
)

// optional is a member that may be absent, null or a value (JSON merge
// patch semantics).
type optional[T any] struct {
	set, null bool
	value     T
}

// UnmarshalJSON records that the member was present, and whether null.
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.value, json.RejectUnknownMembers(true))
}

func (o optional[T]) field() contacts.Field[T] {
	return contacts.Field[T]{Set: o.set, Null: o.null, Value: o.value}
}

type contactInput struct {
	ExternalID       optional[string]                  `json:"externalId"`
	CrmID            optional[string]                  `json:"crmId"`
	Email            optional[string]                  `json:"email"`
	Phone            optional[string]                  `json:"phone"`
	FirstName        optional[string]                  `json:"firstName"`
	LastName         optional[string]                  `json:"lastName"`
	DateOfBirth      optional[string]                  `json:"dateOfBirth"`
	Gender           optional[string]                  `json:"gender"`
	Country          optional[string]                  `json:"country"`
	Channels         optional[[]contacts.Channel]      `json:"channels"`
	CustomAttributes optional[[]contacts.Attribute]    `json:"customAttributes"`
	Consents         optional[[]contacts.ConsentInput] `json:"consents"`
}

func (in contactInput) domain() contacts.Input {
	return contacts.Input{
		ExternalID: in.ExternalID.field(), CrmID: in.CrmID.field(), Email: in.Email.field(), Phone: in.Phone.field(),
		FirstName: in.FirstName.field(), LastName: in.LastName.field(), DateOfBirth: in.DateOfBirth.field(),
		Gender: in.Gender.field(), Country: in.Country.field(), Channels: in.Channels.field(),
		CustomAttributes: in.CustomAttributes.field(), Consents: in.Consents.field(),
	}
}

type upsertRequest struct {
	Mode    *string        `json:"mode"`
	MatchBy *string        `json:"matchBy"`
	Data    []contactInput `json:"data"`
}

func (r *patchRequest) expected() expectedVersion { return r.ExpectedVersion }

type patchRequest struct {
	contactInput
	ExpectedVersion expectedVersion `json:"expectedVersion"`
}

type eventRequest struct {
	Type        *string `json:"type"`
	Message     *string `json:"message"`
	SourceURL   *string `json:"sourceUrl"`
	InitiatedBy *string `json:"initiatedBy"`
	OccurredAt  *string `json:"occurredAt"`
}

type tokenRequest struct {
	Subject    *string  `json:"subject"`
	Scopes     []string `json:"scopes"`
	TTLSeconds *int     `json:"ttlSeconds"`
}

type tokenJSON struct {
	AccessToken string `json:"accessToken"`
	TokenType   string `json:"tokenType"`
	ExpiresIn   int    `json:"expiresIn"`
	ExpiresAt   string `json:"expiresAt"`
}

type consentJSON struct {
	Topic     string `json:"topic"`
	Value     string `json:"value"`
	UpdatedAt string `json:"updatedAt"`
	Source    string `json:"source"`
}

type contactJSON struct {
	ID               string               `json:"id"`
	Version          int64                `json:"version"`
	ExternalID       *string              `json:"externalId"`
	CrmID            *string              `json:"crmId"`
	Email            *string              `json:"email"`
	Phone            *string              `json:"phone"`
	FirstName        *string              `json:"firstName"`
	LastName         *string              `json:"lastName"`
	DateOfBirth      *string              `json:"dateOfBirth"`
	Gender           *string              `json:"gender"`
	Country          *string              `json:"country"`
	Channels         []contacts.Channel   `json:"channels"`
	CustomAttributes []contacts.Attribute `json:"customAttributes"`
	Consents         []consentJSON        `json:"consents"`
	Anonymized       bool                 `json:"anonymized"`
	CreatedAt        string               `json:"createdAt"`
	UpdatedAt        string               `json:"updatedAt"`
}

func toContactJSON(c contacts.Contact) contactJSON {
	out := contactJSON{
		ID: c.ID, Version: c.Version, ExternalID: c.ExternalID, CrmID: c.CrmID, Email: c.Email, Phone: c.Phone,
		FirstName: c.FirstName, LastName: c.LastName, DateOfBirth: c.DateOfBirth, Gender: c.Gender, Country: c.Country,
		Channels: c.Channels, CustomAttributes: c.CustomAttributes, Consents: []consentJSON{},
		Anonymized: c.Anonymized, CreatedAt: wireTime(c.CreatedAt), UpdatedAt: wireTime(c.UpdatedAt),
	}
	if out.Channels == nil {
		out.Channels = []contacts.Channel{}
	}
	if out.CustomAttributes == nil {
		out.CustomAttributes = []contacts.Attribute{}
	}
	for _, cs := range c.Consents {
		out.Consents = append(out.Consents, consentJSON{Topic: cs.Topic, Value: cs.Value, UpdatedAt: wireTime(cs.UpdatedAt), Source: cs.Source})
	}
	return out
}

// toTimelineJSON shapes a timeline item: {id, type, at, data?}, and for an
// external event its four members always, null once erased.
func toTimelineJSON(it contacts.TimelineItem) map[string]any {
	out := map[string]any{"id": it.ID, "type": it.Type, "at": wireTime(it.At)}
	if len(it.Data) > 0 {
		out["data"] = it.Data
	}
	if it.Type == contacts.ItemExternalEvent {
		out["eventType"], out["message"], out["sourceUrl"], out["initiatedBy"] = it.EventType, it.Message, it.SourceURL, it.InitiatedBy
	}
	if it.Type == contacts.ItemInbound || it.Type == contacts.ItemOutbound {
		out["messageId"] = it.MessageID
	}
	return out
}

type resultJSON struct {
	Index   int    `json:"index"`
	ID      string `json:"id,omitempty"`
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
}
