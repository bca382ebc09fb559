package messages

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/store"
)

// SendInput is POST /v1/messages.
type SendInput struct {
	To        *string
	ContactID *string
	Body      *string
	From      *string
	MediaURLs []string // nil: absent
}

// Limits of a message.
const (
	maxBody   = 1600
	maxMedia  = 10
	maxURLLen = 2000
)

// validate checks what can be checked without the database.
func (in *SendInput) validate() (to, from string, errs []switchboard.FieldError) {
	add := func(f, m string) { errs = append(errs, switchboard.FieldError{Field: f, Message: m}) }
	switch {
	case (in.To == nil) == (in.ContactID == nil):
		add("to", "give exactly one of to and contactId")
	case in.To != nil:
		n, ok := switchboard.NormalizePhone(*in.To, "")
		if !ok {
			add("to", "must be a phone number in E.164 form")
		}
		to = n
	}
	if in.MediaURLs != nil {
		if len(in.MediaURLs) < 1 || len(in.MediaURLs) > maxMedia {
			add("mediaUrls", "must hold 1 to 10 URLs")
		}
		for i, u := range in.MediaURLs {
			p, err := url.Parse(u)
			if err != nil || p.Scheme != "https" || p.Host == "" || len(u) > maxURLLen {
				add(fmt.Sprintf("mediaUrls[%d]", i), "must be an https URL")
			}
		}
	}
	switch {
	case in.Body == nil && in.MediaURLs == nil:
		add("body", "is required unless mediaUrls are given")
	case in.Body != nil && utf8.RuneCountInString(*in.Body) > maxBody:
		add("body", "must be at most 1600 characters")
	case in.Body != nil && *in.Body == "" && in.MediaURLs == nil:
		add("body", "must be 1 to 1600 characters")
	}
	if in.From != nil {
		n, ok := switchboard.NormalizePhone(*in.From, "")
		if !ok {
			add("from", "must be one of the customer's phone numbers")
		}
		from = n
	}
	return to, from, errs
}

// Send accepts an outbound message: stored durably, with its outbox
// pointer, then handed to the sender. With an Idempotency-Key (key, and the
// request's fingerprint) the message's id is derived from the key, so its
// insert is the key's claim: a retry of the same request finds it and gets
// it back (replayed), another request with that key is
// switchboard.ErrIdempotencyKeyReused.
func (h *Handle) Send(ctx context.Context, in SendInput, key string, fingerprint []byte) (Message, bool, error) {
	to, from, errs := in.validate()
	if len(errs) > 0 {
		return Message{}, false, &switchboard.ValidationError{Fields: errs}
	}
	id := newID()
	var fp []byte
	if key != "" {
		id = h.s.derivedID("message", h.customerID, key)
		m := hmac.New(sha256.New, h.s.cfg.Secret)
		m.Write(fingerprint)
		fp = m.Sum(nil)
	}
	// What the send needs is read at once: the recipient and its opt-out,
	// and the numbers. (A contact with the recipient's phone is linked by
	// the sender, off the request's path.)
	var (
		g   errgroup.Group
		out OptOut
		ns  []numberDoc
	)
	g.Go(func() (err error) {
		ns, err = h.numbersOf(ctx)
		return err
	})
	var refused error
	g.Go(func() error {
		if in.ContactID != nil {
			addr, err := h.contacts.SMSAddress(ctx, *in.ContactID)
			switch {
			case errors.Is(err, contacts.ErrNotFound):
				refused = switchboard.Invalid("contactId", "no such contact")
				return nil
			case errors.Is(err, contacts.ErrNoPhone):
				refused = switchboard.Invalid("contactId", "the contact has no phone number and no sms channel")
				return nil
			case err != nil:
				return err
			}
			to = addr
		}
		var err error
		out, err = h.optOut(ctx, to)
		return err
	})
	if err := g.Wait(); err != nil {
		return Message{}, false, err
	}
	switch {
	case refused != nil:
	case from != "" && !slices.ContainsFunc(ns, func(d numberDoc) bool { return d.number == from }):
		refused = switchboard.Invalid("from", "is not one of the customer's phone numbers")
	case from == "" && len(ns) == 0:
		refused = ErrNoSenderNumber
	case out.OptedOut:
		refused = ErrRecipientOptedOut
	case from == "":
		from = ns[0].number
	}
	if refused != nil {
		// A retry of a request accepted before answers as the first did,
		// whatever changed since (an opt-out, a contact gone).
		if key != "" {
			if d, err := h.earlier(ctx, id); err != nil || d != nil {
				if err != nil {
					return Message{}, false, err
				}
				return h.replay(d, fp)
			}
		}
		return Message{}, false, refused
	}
	now := h.s.now()
	d := &messageDoc{ID: id, Version: 1, Direction: Outbound, Status: StatusAccepted,
		PartyIdx: [][]byte{h.phoneIdx(from), h.phoneIdx(to)}, ContactID: in.ContactID,
		Fingerprint: fp, CreatedAt: now, UpdatedAt: now}
	body := ""
	if in.Body != nil {
		body = *in.Body
	}
	d.BodyIdx = h.bodyIdx(body)
	if err := h.seal(d, &payload{From: from, To: to, Body: in.Body, MediaURLs: in.MediaURLs}); err != nil {
		return Message{}, false, err
	}
	// The message and its pointer go to two databases at once; the answer
	// waits for both. A pointer whose message never came is dropped by the
	// sender; a message whose pointer write failed was not acknowledged.
	var w errgroup.Group
	var dup bool
	w.Go(func() error {
		err := h.docs.Insert(ctx, d.ID, d)
		if mongo.IsDuplicateKeyError(err) {
			dup = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("store message: %w", err)
		}
		return nil
	})
	w.Go(func() error { return h.s.point(ctx, job{kind: jobSend, customerID: h.customerID, messageID: id}) })
	if err := w.Wait(); err != nil {
		return Message{}, false, err
	}
	if dup {
		got, err := h.earlier(ctx, id)
		if err != nil {
			return Message{}, false, err
		}
		return h.replay(got, fp)
	}
	h.s.handOff(job{kind: jobSend, customerID: h.customerID, messageID: id})
	m, err := h.view(d)
	return m, false, err
}

// earlier reads the message a request under the same Idempotency-Key
// accepted before, or nil.
func (h *Handle) earlier(ctx context.Context, id string) (*messageDoc, error) {
	var d messageDoc
	err := h.messages().FindID(ctx, id).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	return &d, nil
}

// replay answers a retry under an Idempotency-Key with the message as it
// is now, or refuses another request under the same key.
func (h *Handle) replay(d *messageDoc, fp []byte) (Message, bool, error) {
	if d.Direction != Outbound || !hmac.Equal(d.Fingerprint, fp) {
		return Message{}, false, switchboard.ErrIdempotencyKeyReused
	}
	if d.Status == StatusAccepted {
		// The first request may have stopped before its pointer stood.
		j := job{kind: jobSend, customerID: h.customerID, messageID: d.ID}
		if err := h.s.point(context.Background(), j); err != nil {
			return Message{}, false, err
		}
		h.s.handOff(j)
	}
	m, err := h.view(d)
	return m, true, err
}

// messages is the messages collection.
func (h *Handle) messages() *store.Coll { return h.docs.Docs }
