package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard/switchboard/store"
)

// What messaging needs of contacts: who a phone number is, where a contact
// is reached by SMS, message items on the timeline and the consent "sms"
// kept in step with opt-out keywords.

// ErrNoPhone: a contact with neither a phone nor an sms channel.
var ErrNoPhone = errors.New("contact has no phone number")

// Consent values.
const (
	ConsentTrue                 = "True"
	ConsentFalse                = "False"
	ConsentAwaitingConfirmation = "AwaitingConfirmation"
)

// TopicSMS is the consent topic SMS keywords move.
const TopicSMS = "sms"

// FindByPhone returns the id of the contact whose phone is e164 (through
// its blind index), else of the newest contact with e164 as an sms channel,
// else "".
func (h *Handle) FindByPhone(ctx context.Context, e164 string) (string, error) {
	if id, err := h.FindByPhoneOnly(ctx, e164); id != "" || err != nil {
		return id, err
	}
	found, err := h.Lookup(ctx, "channel", e164)
	if err != nil {
		return "", err
	}
	for _, c := range found {
		if slices.Contains(c.Channels, Channel{Type: "sms", Address: e164}) {
			return c.ID, nil
		}
	}
	return "", nil
}

// FindByPhoneOnly returns the id of the contact whose phone is e164 (its
// blind index: no scan), or "".
func (h *Handle) FindByPhoneOnly(ctx context.Context, e164 string) (string, error) {
	doc, err := h.findBy(ctx, KeyPhone, e164)
	switch {
	case err == nil:
		return doc.ID, nil
	case errors.Is(err, ErrNotFound):
		return "", nil
	}
	return "", err
}

// SMSAddress returns where a contact is reached by SMS: its phone, else its
// first sms channel (ErrNoPhone when it has neither).
func (h *Handle) SMSAddress(ctx context.Context, id string) (string, error) {
	_, p, err := h.load(ctx, id)
	if err != nil {
		return "", err
	}
	if p.Phone != nil {
		return *p.Phone, nil
	}
	for _, c := range p.Channels {
		if c.Type == "sms" {
			return c.Address, nil
		}
	}
	return "", ErrNoPhone
}

// AddMessageItem puts a message.inbound or message.outbound item on a
// contact's timeline. itemID is derived from the message by the caller, so
// adding it again changes nothing.
func (h *Handle) AddMessageItem(ctx context.Context, contactID, itemID, typ, messageID string, at time.Time) error {
	if typ != ItemInbound && typ != ItemOutbound {
		return fmt.Errorf("message item type %q", typ)
	}
	if _, done := h.flushed.Get(itemID); done {
		return nil
	}
	mid := messageID
	b, err := json.Marshal(timelinePayload{MessageID: &mid})
	if err != nil {
		return err
	}
	sealed, err := h.cipher.Seal(timelineField(itemID), b)
	if err != nil {
		return err
	}
	d := timelineDoc{ID: itemID, ContactID: contactID, Type: typ, At: at.UTC().Truncate(time.Millisecond), Sealed: sealed}
	if err := h.putItems(ctx, []timelineDoc{d}); err != nil {
		return fmt.Errorf("record message item: %w", err)
	}
	h.flushed.Add(itemID, struct{}{})
	return nil
}

// SMSState is where a phone's opt-out ledger stands: what a contact's
// consent "sms" follows.
type SMSState struct {
	OptIn bool
	// Confirms: the opt-in may confirm a consent awaiting confirmation
	// (double opt-in: only a YES or START from the phone).
	Confirms bool
	Source   string
}

// InStep reports whether a contact's consent "sms" agrees with a ledger
// state.
func InStep(c Contact, st SMSState) bool { return inStep(c.Consents, st) }

func inStep(cons []Consent, st SMSState) bool {
	i := slices.IndexFunc(cons, func(c Consent) bool { return c.Topic == TopicSMS })
	if i < 0 {
		return false
	}
	switch v := cons[i].Value; {
	case !st.OptIn:
		return v == ConsentFalse
	case v == ConsentTrue:
		return true
	default:
		return v == ConsentAwaitingConfirmation && !st.Confirms
	}
}

// SMSConsent brings a contact's consent "sms" in step with its phone's
// opt-out ledger: False when opted out, True when opted in (an opt-in
// that may not confirm leaves a consent awaiting confirmation as it is),
// with the ledger's source. state reads the ledger; it is read again
// whenever the change is retried, so of changes racing the last one
// applied follows the ledger's latest state. A consent already in step
// changes nothing; a contact gone meanwhile is no error.
func (h *Handle) SMSConsent(ctx context.Context, id string, state func(context.Context) (SMSState, error)) error {
	_, _, err := h.change(ctx, id, store.AnyVersion, func(old *contactDoc, oldP *personal) (*personal, *string, bool, []timelineDoc, error) {
		st, err := state(ctx)
		if err != nil {
			return nil, nil, false, nil, err
		}
		if inStep(oldP.Consents, st) {
			return nil, nil, false, nil, errNothingToChange
		}
		want := ConsentFalse
		if st.OptIn {
			want = ConsentTrue
		}
		now := h.nowMs()
		p, _, changes := merge(oldP, Input{Consents: Field[[]ConsentInput]{Set: true, Value: []ConsentInput{{Topic: TopicSMS, Value: want, Source: st.Source}}}}, now)
		items, err := h.items(id, "", nil, changes, now)
		return p, old.Country, old.Anonymized, items, err
	})
	if errors.Is(err, errNothingToChange) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// errNothingToChange stops a change that would store what is there.
var errNothingToChange = errors.New("nothing to change")

// MessageItem is a message's item on a contact's timeline.
type MessageItem struct {
	ContactID, ItemID, Type, MessageID string
	At                                 time.Time
}

// AddMessageItems puts many message items on timelines with one insert;
// items already there are left as they are.
func (h *Handle) AddMessageItems(ctx context.Context, items []MessageItem) error {
	var docs []timelineDoc
	for _, it := range items {
		if it.Type != ItemInbound && it.Type != ItemOutbound {
			return fmt.Errorf("message item type %q", it.Type)
		}
		if _, done := h.flushed.Get(it.ItemID); done {
			continue
		}
		mid := it.MessageID
		b, err := json.Marshal(timelinePayload{MessageID: &mid})
		if err != nil {
			return err
		}
		sealed, err := h.cipher.Seal(timelineField(it.ItemID), b)
		if err != nil {
			return err
		}
		docs = append(docs, timelineDoc{ID: it.ItemID, ContactID: it.ContactID, Type: it.Type, At: it.At.UTC().Truncate(time.Millisecond), Sealed: sealed})
	}
	if len(docs) == 0 {
		return nil
	}
	if err := h.putItems(ctx, docs); err != nil {
		return fmt.Errorf("record message items: %w", err)
	}
	for _, it := range items {
		h.flushed.Add(it.ItemID, struct{}{})
	}
	return nil
}
