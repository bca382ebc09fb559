package messages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/store"
)

// A step computes a message's next state from its current one, or returns
// nil to change nothing.
type step func(cur *messageDoc, p *payload) (*messageDoc, *payload, error)

// apply changes a message through its next version's claim (expected:
// store.AnyVersion, or the version the change was judged on).
//
// A redacted message keeps the blind index of its body (bodyIdx) only
// while an attempt is unsettled (reconcile finds Twilio's copy by it); the
// change that settles it drops the index, from the earlier versions'
// claims too.
func (h *Handle) apply(ctx context.Context, id string, expected int64, f step) (*messageDoc, error) {
	var dropped bool
	d, err := h.docs.Update(ctx, id, expected, func(cur *messageDoc) (*messageDoc, struct{}, error) {
		p, err := h.open(cur)
		if err != nil {
			return nil, struct{}{}, err
		}
		nxt, np, err := f(cur, p)
		if err != nil || nxt == nil {
			return nil, struct{}{}, err
		}
		nxt.Version = cur.Version + 1
		nxt.UpdatedAt = h.s.now()
		if np != nil {
			if err := h.seal(nxt, np); err != nil {
				return nil, struct{}{}, err
			}
		}
		// A redaction rewrites the history itself (Redact); a later change
		// that drops the index does it here.
		dropped = spendBodyIdx(nxt) && cur.RedactedAt != nil
		return nxt, struct{}{}, nil
	}, store.UpdateOptions[messageDoc]{})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil || !dropped {
		return d, err
	}
	// The earlier versions' claims held the index (and, before the
	// redaction, the body): they keep only the latest state now.
	return d, h.redactHistory(ctx, d)
}

// spendBodyIdx drops the body's blind index from a redacted message once
// no attempt of it is unsettled, and reports whether it did. Short bodies
// (a code) could be found again from it by whoever holds the database and
// the key.
func spendBodyIdx(d *messageDoc) bool {
	if d.RedactedAt == nil || d.AttemptAt != nil || d.BodyIdx == nil {
		return false
	}
	d.BodyIdx = nil
	return true
}

// redactHistory rewrites the claims of d's earlier versions with d's
// state (redacted: no body, no index).
func (h *Handle) redactHistory(ctx context.Context, d *messageDoc) error {
	return h.docs.RedactHistory(ctx, d.ID, d.Version, func(n int64) *messageDoc {
		c := *d
		c.Version = n
		return &c
	})
}

// advanced is cur moved to Twilio's status (tw), as far as it moves
// forward; nil when nothing changes. A final status never changes; the
// Twilio SID is learnt once. An attempt is over once Twilio knows the
// message.
func advanced(cur *messageDoc, p *payload, tw string, code int, errMsg, sid string, at time.Time) (*messageDoc, *payload) {
	if cur.Direction != Outbound {
		return nil, nil
	}
	nxt := *cur
	np := *p
	changed := false
	if sid != "" && cur.TwilioSID == nil {
		s := sid
		nxt.TwilioSID, changed = &s, true
		// Twilio has a copy after all (a status for an attempt that was
		// judged unsent): a redacted message's copy must be erased too.
		if cur.RedactedAt != nil {
			nxt.TwilioRedacted = false
		}
	}
	if sid != "" && nxt.AttemptAt != nil {
		nxt.AttemptAt, changed = nil, true
	}
	st := fromTwilio(tw)
	if st != "" && !final(cur.Status) && rank(st) > rank(cur.Status) {
		nxt.Status, changed = st, true
		if rank(st) >= rank(StatusSent) && st != StatusFailed && nxt.SentAt == nil {
			t := at
			nxt.SentAt = &t
		}
		if st == StatusDelivered {
			t := at
			nxt.DeliveredAt = &t
		}
		if (st == StatusFailed || st == StatusUndelivered) && code != 0 {
			c := code
			nxt.ErrorCode = &c
			if errMsg != "" {
				m := errMsg
				np.ErrorMessage = &m
			}
		}
	}
	if !changed {
		return nil, nil
	}
	return &nxt, &np
}

// registerSID records which message a Twilio SID is: of two messages that
// would take one SID (a reconciliation adopting another's), only the first
// does. It reports whether sid is (now) this message's.
func (h *Handle) registerSID(ctx context.Context, sid, messageID string) (bool, error) {
	type sidDoc struct {
		ID        string `bson:"_id"`
		MessageID string `bson:"messageId"`
	}
	coll := h.db.Collection("message_sids")
	err := coll.InsertOne(ctx, sidDoc{ID: sid, MessageID: messageID})
	if err == nil {
		return true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, fmt.Errorf("register twilio sid: %w", err)
	}
	var got sidDoc
	if err := coll.FindID(ctx, sid).Decode(&got); err != nil {
		return false, fmt.Errorf("register twilio sid: %w", err)
	}
	return got.MessageID == messageID, nil
}

// sidOwner returns the message a Twilio SID was registered for, or "".
func (h *Handle) sidOwner(ctx context.Context, sid string) (string, error) {
	var got struct {
		MessageID string `bson:"messageId"`
	}
	err := h.db.Collection("message_sids").FindID(ctx, sid).Decode(&got)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read twilio sid: %w", err)
	}
	return got.MessageID, nil
}

// isConflict reports a lost claim: another writer changed the message.
func isConflict(err error) bool {
	var ce *store.ConflictError
	return errors.As(err, &ce)
}
