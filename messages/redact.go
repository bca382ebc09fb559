package messages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard/switchboard/store"
)

// Redact erases a message's body and media URLs here, and has the sender
// erase Twilio's copy (redacted, or deleted once the message is final),
// retrying until Twilio confirms. A message not yet handed to Twilio is
// never sent. Redacting again changes nothing.
func (h *Handle) Redact(ctx context.Context, id string) (Message, error) {
	// The job first: a crash after the local erasure still reaches Twilio.
	j := job{kind: jobRedact, customerID: h.customerID, messageID: id}
	if _, err := h.docs.Get(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Message{}, ErrNotFound
		}
		return Message{}, err
	}
	if err := h.s.point(ctx, j); err != nil {
		return Message{}, err
	}
	if hold := h.s.holdBeforeRedact; hold != nil {
		hold(id)
	}
	now := h.s.now()
	d, err := h.apply(ctx, id, 0, func(cur *messageDoc, p *payload) (*messageDoc, *payload, error) {
		if cur.RedactedAt != nil {
			return nil, nil, nil
		}
		nxt, np := *cur, *p
		np.Body, np.MediaURLs = nil, nil
		at := now
		nxt.RedactedAt = &at
		if cur.TwilioSID == nil && cur.AttemptAt == nil && cur.Status != StatusAccepted {
			nxt.TwilioRedacted = true // Twilio never had it
		}
		return &nxt, &np, nil
	})
	if err != nil {
		return Message{}, err
	}
	// The earlier versions' claims held the body too (apply rewrote them
	// already when it dropped the body's index).
	if err := h.redactHistory(ctx, d); err != nil {
		return Message{}, err
	}
	// And the copies waiting in pushed events (redacting again finishes
	// it).
	if err := h.forgetEvents(ctx, id); err != nil {
		return Message{}, err
	}
	h.s.handOff(j)
	return h.view(d)
}

// redactPage is how many messages RedactParty reads at once.
const redactPage = 100

// RedactParty redacts every message of a person, here and at Twilio: those
// linked to contact contactID and every other one to or from one of addrs
// (normalised numbers: the contact's phone and sms channels), those
// exchanged before it was a contact included. It reads them a page at a
// time off the index ranges of the contact and of each number, so a person
// with many messages is never held in memory at once. Redacting again
// finishes a redaction stopped half-way.
func (h *Handle) RedactParty(ctx context.Context, contactID string, addrs []string) error {
	ranges := []store.Range{contactMessages(contactID)}
	for _, a := range addrs {
		ranges = append(ranges, phoneMessages(h.phoneIdx(a)))
	}
	for _, r := range ranges {
		r.Limit = redactPage
		for {
			docs, keys, err := h.docs.Scan(ctx, r, nil)
			if err != nil {
				return fmt.Errorf("messages of a contact: %w", err)
			}
			for _, d := range docs {
				if _, err := h.Redact(ctx, d.ID); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			if len(docs) < r.Limit {
				break
			}
			r.After = keys[len(keys)-1]
		}
	}
	return nil
}

// redactAtTwilio runs a redact job: Twilio's copy of a redacted message is
// deleted when the message is final (redacted when Twilio refuses that),
// else redacted.
func (s *Service) redactAtTwilio(ctx context.Context, j job) (time.Duration, error) {
	h, acct, err := s.openFor(ctx, j.customerID)
	if err != nil || h == nil {
		return 0, err
	}
	d, err := h.docs.Latest(ctx, j.messageID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil // gone: nothing left to erase here
	}
	if err != nil {
		return time.Second, err // the job stays: erasure is retried until done
	}
	if d.TwilioRedacted {
		return 0, nil
	}
	if d.RedactedAt == nil {
		// The job is written just before the redaction: one still on its
		// way (or read from a stale copy) is waited for a little; one whose
		// request failed before it redacted anything is void.
		if s.pointerYoung(ctx, j) {
			return time.Second, nil
		}
		return 0, nil
	}
	if d.TwilioSID == nil {
		if d.Status == StatusAccepted || d.AttemptAt != nil {
			// The sender has not settled whether Twilio has it.
			return 5 * time.Second, nil
		}
		_, err := h.apply(ctx, d.ID, 0, markTwilioRedacted)
		return retryOnConflict(err)
	}
	if acct.AccountSID == "" {
		return 0, nil
	}
	sid := *d.TwilioSID
	if final(d.Status) {
		err = s.cfg.Twilio.DeleteMessage(ctx, acct.AccountSID, sid)
		if TwilioCode(err) == CodeMessageNotFinished {
			err = s.cfg.Twilio.RedactMessage(ctx, acct.AccountSID, sid)
		}
	} else {
		err = s.cfg.Twilio.RedactMessage(ctx, acct.AccountSID, sid)
	}
	if errors.Is(err, ErrTwilioNotFound) {
		err = nil // Twilio holds no copy
	}
	if err != nil {
		return backoff(s.cfg.RetryBase*5, d.Attempt+1), err
	}
	_, err = h.apply(ctx, d.ID, 0, markTwilioRedacted)
	return retryOnConflict(err)
}

func markTwilioRedacted(cur *messageDoc, _ *payload) (*messageDoc, *payload, error) {
	if cur.TwilioRedacted {
		return nil, nil, nil
	}
	nxt := *cur
	nxt.TwilioRedacted = true
	return &nxt, nil, nil
}
