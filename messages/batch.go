package messages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard/contacts"
)

// maxBatch bounds the send jobs of one customer the sender runs together.
const maxBatch = 100

// parallel bounds the reads and Twilio calls of one batch in flight.
const parallel = 16

// sendBatch runs the send jobs of one customer together: the same steps
// as send, with the database work of many messages done in a few round
// trips (one insert of all attempt claims, one bulk apply, one insert of
// all Twilio SIDs, one of all status claims, one of all timeline items)
// and the Twilio calls side by side. A message that needs more than the
// usual path (a claim lost to another writer, a refusal, a 429, no
// answer) is settled on its own, as send does. It returns, per job, how
// long to wait before running it again (0: settled).
func (s *Service) sendBatch(ctx context.Context, customerID string, jobs []job) []time.Duration {
	waits := make([]time.Duration, len(jobs))
	fail := func(i int, err error) {
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("outbox job failed; retrying", "kind", jobs[i].kind, "customerId", customerID, "messageId", jobs[i].messageID, "err", err)
			if waits[i] == 0 {
				waits[i] = 5 * time.Second
			}
		}
	}
	h, acct, err := s.openFor(ctx, customerID)
	if err != nil || h == nil {
		for i := range jobs {
			fail(i, err)
		}
		return waits
	}
	// Judge every message (reads side by side).
	attempts := make([]*attempt, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, j := range jobs {
		g.Go(func() error {
			a, wait, err := s.prepare(gctx, h, acct, j)
			attempts[i], waits[i] = a, wait
			fail(i, err)
			return nil
		})
	}
	_ = g.Wait()
	var idx []int
	var ids []string
	var prevs, nexts []*messageDoc
	for i, a := range attempts {
		if a != nil {
			idx = append(idx, i)
			ids = append(ids, a.next.ID)
			prevs, nexts = append(prevs, a.prev), append(nexts, a.next)
		}
	}
	if len(idx) == 0 {
		return waits
	}
	// Claim every attempt with one insert.
	won, err := h.docs.ClaimMany(ctx, ids, prevs, nexts, make([]struct{}, len(ids)))
	if err != nil {
		for _, i := range idx {
			waits[i] = time.Second
			fail(i, err)
		}
		return waits
	}
	var claimed []int
	for k, i := range idx {
		if won[k] {
			claimed = append(claimed, i)
		} else {
			waits[i] = 100 * time.Millisecond // another writer moved it: judge it again
		}
	}
	if err := h.outboundItems(ctx, attempts, claimed); err != nil {
		for _, i := range claimed {
			fail(i, err) // the job is run again and finds the attempt in flight
		}
	}
	// Hand them to Twilio side by side, each judged again right before.
	answers := make([]TwilioMessage, len(jobs))
	errs := make([]error, len(jobs))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	held := make([]bool, len(jobs)) // the pre-create check stopped it
	for _, i := range claimed {
		g.Go(func() error {
			ok, wait, err := h.cleared(gctx, attempts[i].next)
			if !ok {
				held[i], waits[i] = true, wait
				fail(i, err)
				return nil
			}
			answers[i], errs[i] = s.create(gctx, acct.AccountSID, attempts[i].next, attempts[i].p)
			return nil
		})
	}
	_ = g.Wait()
	// The usual answer (accepted) is recorded for all at once; any other
	// is settled on its own.
	var ok []int
	for _, i := range claimed {
		if held[i] {
			continue
		}
		if errs[i] == nil {
			ok = append(ok, i)
			continue
		}
		waits[i], err = s.settle(ctx, h, jobs[i], attempts[i].next, answers[i], errs[i])
		fail(i, err)
	}
	if len(ok) == 0 {
		return waits
	}
	if err := h.registerSIDs(ctx, attempts, answers, ok); err != nil {
		for _, i := range ok {
			waits[i] = time.Second
			fail(i, err)
		}
		return waits
	}
	ids, prevs, nexts = ids[:0], prevs[:0], nexts[:0]
	var recorded []int // the jobs of ids, in order
	for _, i := range ok {
		nxt, np := s.sentState(attempts[i].next, attempts[i].p, answers[i])
		nxt.Version = attempts[i].next.Version + 1
		nxt.UpdatedAt = s.now()
		if np != nil {
			if err := h.seal(nxt, np); err != nil {
				waits[i] = time.Second
				fail(i, err)
				continue
			}
		}
		ids, prevs, nexts, recorded = append(ids, nxt.ID), append(prevs, attempts[i].next), append(nexts, nxt), append(recorded, i)
	}
	won, err = h.docs.ClaimMany(ctx, ids, prevs, nexts, make([]struct{}, len(ids)))
	for k, i := range recorded {
		switch {
		case err != nil:
			waits[i] = time.Second
			fail(i, err)
		case !won[k]:
			// A status callback got there first: record the send on top.
			waits[i], err = s.settle(ctx, h, jobs[i], attempts[i].next, answers[i], nil)
			fail(i, err)
		}
	}
	return waits
}

// outboundItems puts the claimed messages on their contacts' timelines
// with one insert.
func (h *Handle) outboundItems(ctx context.Context, attempts []*attempt, claimed []int) error {
	var items []contacts.MessageItem
	for _, i := range claimed {
		d := attempts[i].next
		if d.ContactID != nil {
			items = append(items, contacts.MessageItem{ContactID: *d.ContactID, ItemID: timelineItemID(h.s, d.ID),
				Type: contacts.ItemOutbound, MessageID: d.ID, At: d.CreatedAt})
		}
	}
	return h.contacts.AddMessageItems(ctx, items)
}

// registerSIDs records the Twilio SIDs of accepted messages with one
// insert. A SID already registered to another message (a reconciliation
// took it) is an error for that message's job.
func (h *Handle) registerSIDs(ctx context.Context, attempts []*attempt, answers []TwilioMessage, ok []int) error {
	docs := make([]any, len(ok))
	for k, i := range ok {
		docs[k] = bson.D{{Key: "_id", Value: answers[i].SID}, {Key: "messageId", Value: attempts[i].next.ID}}
	}
	err := h.db.Collection("message_sids").InsertMany(ctx, docs)
	var bwe mongo.BulkWriteException
	if err == nil {
		return nil
	}
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return fmt.Errorf("register twilio sids: %w", err)
	}
	for _, we := range bwe.WriteErrors {
		i := ok[we.Index]
		if mine, err := h.registerSID(ctx, answers[i].SID, attempts[i].next.ID); err != nil || !mine {
			return fmt.Errorf("register twilio sid of %s: taken or unreadable (%v)", attempts[i].next.ID, err)
		}
	}
	return nil
}
