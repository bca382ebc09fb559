package tenants

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard/switchboard/crypto"
)

// next returns a copy of doc as its next version, changed at now.
func next(doc *customerDoc, now time.Time) *customerDoc {
	n := *doc
	n.Version = doc.Version + 1
	n.UpdatedAt = now
	if doc.Twilio != nil {
		t := *doc.Twilio
		n.Twilio = &t
	}
	return &n
}

// Activate activates a customer, creating its Twilio sub-account the first
// time and re-opening a suspended one later. Activating an ACTIVE customer
// changes nothing.
func (s *Service) Activate(ctx context.Context, p Partner, id string, expected int64) (Customer, error) {
	check := func(cur *customerDoc) (bool, error) {
		switch cur.Status {
		case StatusActive:
			return true, nil
		case StatusRegistered, StatusDeactivated:
			return false, nil
		}
		return false, &TransitionError{From: cur.Status, Action: "activate"}
	}
	doc, err := s.update(ctx, "activate customer", p.ID, id, expected, check, func(cur *customerDoc, now time.Time) (*customerDoc, string, map[string]any, error) {
		var twilio *twilioDoc
		if cur.Status == StatusRegistered {
			sub, err := s.ensureSubaccount(ctx, id)
			if err != nil {
				return nil, "", nil, err
			}
			// The route before the status: a callback that finds it for a
			// customer not ACTIVE yet changes nothing, and an activation
			// that fails after it writes it again when retried.
			if err := s.routeSubaccount(ctx, sub.SID, id); err != nil {
				return nil, "", nil, err
			}
			c, err := s.cfg.Keyring.Cipher(ctx, id)
			if err != nil {
				return nil, "", nil, err
			}
			token, err := c.Seal(authTokenField(id), []byte(sub.AuthToken))
			if err != nil {
				return nil, "", nil, err
			}
			twilio = &twilioDoc{AccountSID: sub.SID, Status: SubaccountActive, AuthToken: token}
		} else {
			if err := s.setSubaccountStatus(ctx, cur.Twilio.AccountSID, SubaccountActive); err != nil {
				return nil, "", nil, err
			}
			// Written at the first activation; a customer activated before
			// that gets it here (or from RepairSubaccountRoutes).
			if err := s.routeSubaccount(ctx, cur.Twilio.AccountSID, id); err != nil {
				return nil, "", nil, err
			}
			t := *cur.Twilio
			t.Status = SubaccountActive
			twilio = &t
		}
		nxt := next(cur, now)
		nxt.Status, nxt.Twilio, nxt.ActivatedAt = StatusActive, twilio, &now
		return nxt, EventActivated, map[string]any{"twilioAccountSid": twilio.AccountSID}, nil
	})
	if err != nil {
		return Customer{}, err
	}
	return s.view(ctx, doc, nil)
}

// ensureSubaccount returns the customer's active sub-account, reusing one
// that an earlier attempt created even if that attempt never heard back.
func (s *Service) ensureSubaccount(ctx context.Context, customerID string) (Subaccount, error) {
	name := subaccountName(customerID)
	sub, err := s.cfg.Twilio.FindSubaccount(ctx, name)
	switch {
	case errors.Is(err, ErrSubaccountNotFound):
		return s.cfg.Twilio.CreateSubaccount(ctx, name)
	case err != nil:
		return Subaccount{}, err
	case sub.Status == SubaccountClosed:
		return Subaccount{}, fmt.Errorf("sub-account %s is closed", sub.SID)
	case sub.Status != SubaccountActive:
		if err := s.cfg.Twilio.SetSubaccountStatus(ctx, sub.SID, SubaccountActive); err != nil {
			return Subaccount{}, err
		}
		sub.Status = SubaccountActive
	}
	return sub, nil
}

// Deactivate suspends a customer's sub-account and refuses its tokens.
// Deactivating a DEACTIVATED customer changes nothing.
func (s *Service) Deactivate(ctx context.Context, p Partner, id string, expected int64) (Customer, error) {
	check := func(cur *customerDoc) (bool, error) {
		switch cur.Status {
		case StatusDeactivated:
			return true, nil
		case StatusActive:
			return false, nil
		}
		return false, &TransitionError{From: cur.Status, Action: "deactivate"}
	}
	doc, err := s.update(ctx, "deactivate customer", p.ID, id, expected, check, func(cur *customerDoc, now time.Time) (*customerDoc, string, map[string]any, error) {
		if err := s.setSubaccountStatus(ctx, cur.Twilio.AccountSID, SubaccountSuspended); err != nil {
			return nil, "", nil, err
		}
		nxt := next(cur, now)
		nxt.Status, nxt.DeactivatedAt = StatusDeactivated, &now
		nxt.Twilio.Status = SubaccountSuspended
		return nxt, EventDeactivated, nil, nil
	})
	if err != nil {
		return Customer{}, err
	}
	return s.view(ctx, doc, nil)
}

// UpdateContactInfo replaces a customer's contact info. The customer must be
// ACTIVE or DEACTIVATED.
func (s *Service) UpdateContactInfo(ctx context.Context, p Partner, id string, expected int64, in ContactInfoInput) (Customer, error) {
	info, err := in.Validate()
	if err != nil {
		return Customer{}, err
	}
	check := func(cur *customerDoc) (bool, error) {
		if cur.Status != StatusActive && cur.Status != StatusDeactivated {
			return false, &TransitionError{From: cur.Status, Action: "update the contact info of"}
		}
		return false, nil
	}
	var c *crypto.Cipher
	doc, err := s.update(ctx, "update contact info", p.ID, id, expected, check, func(cur *customerDoc, now time.Time) (*customerDoc, string, map[string]any, error) {
		var err error
		if c == nil {
			if c, err = s.cfg.Keyring.Cipher(ctx, id); err != nil {
				return nil, "", nil, err
			}
		}
		sealed, err := sealContactInfo(c, id, info)
		if err != nil {
			return nil, "", nil, err
		}
		nxt := next(cur, now)
		nxt.ContactInfo = &contactDoc{Country: info.Country, Sealed: sealed}
		return nxt, EventContactInfoUpdated, nil, nil
	})
	if err != nil {
		return Customer{}, err
	}
	return s.view(ctx, doc, c)
}

// Terminate terminates a customer with a retention strategy, closing its
// sub-account first. With NO_RETENTION the customer is shredded before the
// call returns.
func (s *Service) Terminate(ctx context.Context, p Partner, id string, expected int64, in RetentionInput) (Customer, error) {
	now := s.now()
	retention, err := in.validate(now, "retention.")
	if err != nil {
		return Customer{}, err
	}
	check := func(cur *customerDoc) (bool, error) {
		switch cur.Status {
		case StatusRegistered, StatusActive, StatusDeactivated:
			return false, nil
		}
		return false, &TransitionError{From: cur.Status, Action: "terminate"}
	}
	doc, err := s.update(ctx, "terminate customer", p.ID, id, expected, check, func(cur *customerDoc, _ time.Time) (*customerDoc, string, map[string]any, error) {
		twilio, err := s.closeSubaccount(ctx, cur)
		if err != nil {
			return nil, "", nil, err
		}
		// terminatedAt is the time retention was computed from.
		nxt := next(cur, now)
		nxt.Status, nxt.TerminatedAt, nxt.Twilio = StatusTerminated, &now, twilio
		nxt.Retention = &retentionDoc{Strategy: retention.Strategy, Period: retention.Period, ShredAt: retention.ShredAt}
		return nxt, EventTerminated, retentionData(retention), nil
	})
	if err != nil {
		return Customer{}, err
	}
	if retention.Strategy == NoRetention {
		if doc, err = s.shredNow(ctx, id); err != nil {
			// Terminated and due at once: the next purge finishes it.
			return Customer{}, fmt.Errorf("terminate customer: shred: %w", err)
		}
	}
	return s.view(ctx, doc, nil)
}

// ChangeRetention gives a TERMINATED customer a new retention decision (a
// legal hold is INDEFINITE; lifting it is TEMPORARY or NO_RETENTION), with
// shredAt computed from terminatedAt again: a date already past makes it due
// at the next purge, and NO_RETENTION shreds it in the call. Any other
// status is an invalid transition.
func (s *Service) ChangeRetention(ctx context.Context, p Partner, id string, expected int64, in RetentionInput) (Customer, error) {
	if _, err := in.validate(s.now(), ""); err != nil {
		return Customer{}, err // refused before anything is read
	}
	check := func(cur *customerDoc) (bool, error) {
		if cur.Status != StatusTerminated {
			return false, &TransitionError{From: cur.Status, Action: "change the retention of"}
		}
		// A shred that has begun (its mark is written before the key goes)
		// cannot be put on hold: the data may be gone already.
		if under, err := s.shredUnderWay(ctx, id); err != nil || under {
			if err == nil {
				err = ErrDataShredded
			}
			return false, err
		}
		return false, nil
	}
	var strategy Strategy
	doc, err := s.update(ctx, "change retention", p.ID, id, expected, check, func(cur *customerDoc, now time.Time) (*customerDoc, string, map[string]any, error) {
		r, err := in.validate(cur.TerminatedAt.UTC(), "")
		if err != nil {
			return nil, "", nil, err
		}
		strategy = r.Strategy
		nxt := next(cur, now)
		nxt.Retention = &retentionDoc{Strategy: r.Strategy, Period: r.Period, ShredAt: r.ShredAt}
		return nxt, EventRetentionChanged, retentionData(r), nil
	})
	if err != nil {
		return Customer{}, err
	}
	if strategy == NoRetention {
		if doc, err = s.shredNow(ctx, id); err != nil {
			return Customer{}, fmt.Errorf("change retention: shred: %w", err)
		}
	}
	return s.view(ctx, doc, nil)
}

// retentionData is a retention in an event's data (no personal data).
func retentionData(r Retention) map[string]any {
	data := map[string]any{"strategy": string(r.Strategy)}
	if r.Period != nil {
		data["period"] = *r.Period
	}
	if r.ShredAt != nil {
		data["shredAt"] = *r.ShredAt
	}
	return data
}

// shredNow shreds a customer that is due at once (NO_RETENTION). If a purge
// run holds its lease, it waits a little for that run to finish it.
func (s *Service) shredNow(ctx context.Context, id string) (*customerDoc, error) {
	owner := s.leaseOwner()
	for attempt := 0; ; attempt++ {
		doc, err := s.shred(ctx, id, owner, s.now())
		if errors.Is(err, errAlreadyShredded) {
			return s.customers.Latest(ctx, id)
		}
		if !errors.Is(err, ErrLeaseHeld) || attempt >= 100 {
			return doc, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setSubaccountStatus suspends or re-opens a customer's sub-account. One
// that Twilio no longer knows is ErrSubaccountMissing: the customer exists,
// its sub-account does not (an upstream problem, not a 404).
func (s *Service) setSubaccountStatus(ctx context.Context, sid string, status SubaccountStatus) error {
	err := s.cfg.Twilio.SetSubaccountStatus(ctx, sid, status)
	if errors.Is(err, ErrSubaccountNotFound) {
		return fmt.Errorf("%w: %w", ErrSubaccountMissing, err)
	}
	return err
}

// closeSubaccount closes the customer's sub-account, if it has one (a
// REGISTERED customer may have one that an activation created before it
// failed), and returns the customer's Twilio record to store. A sub-account
// Twilio no longer knows is as closed as it gets.
func (s *Service) closeSubaccount(ctx context.Context, doc *customerDoc) (*twilioDoc, error) {
	if doc.Twilio != nil {
		if doc.Twilio.Status != SubaccountClosed {
			err := s.cfg.Twilio.SetSubaccountStatus(ctx, doc.Twilio.AccountSID, SubaccountClosed)
			if err != nil && !errors.Is(err, ErrSubaccountNotFound) {
				return nil, err
			}
		}
		t := *doc.Twilio
		t.Status = SubaccountClosed
		return &t, nil
	}
	sub, err := s.cfg.Twilio.FindSubaccount(ctx, subaccountName(doc.ID))
	if errors.Is(err, ErrSubaccountNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sub.Status != SubaccountClosed {
		err := s.cfg.Twilio.SetSubaccountStatus(ctx, sub.SID, SubaccountClosed)
		if err != nil && !errors.Is(err, ErrSubaccountNotFound) {
			return nil, err
		}
	}
	return &twilioDoc{AccountSID: sub.SID, Status: SubaccountClosed}, nil
}
