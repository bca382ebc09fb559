package tenants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// PurgeOptions controls one purge run. Now decides which customers are due
// (their shredAt is at or before it); DryRun reports them and changes nothing.
type PurgeOptions struct {
	Now    time.Time
	DryRun bool
}

// Purge outcomes, as the CLI prints them.
const (
	OutcomeShredded   = "shredded"
	OutcomeWouldShred = "would_shred"
	OutcomeFailed     = "failed"
)

// PurgeResult is what happened to one due customer.
type PurgeResult struct {
	CustomerID string
	ShredAt    time.Time
	Outcome    string
	Err        error
}

// PurgeSummary counts a run's results.
type PurgeSummary struct {
	Due, Shredded, Failed int
	DryRun                bool
}

// Purge shreds every TERMINATED customer whose shredAt has passed, and
// finishes any shredding a killed run left half-done. It reports each due
// customer through report as it goes. A customer that another run holds
// under lease is skipped (that run reports it). One customer failing does not
// stop the others; the error return is for failures of the run itself.
func (s *Service) Purge(ctx context.Context, opts PurgeOptions, report func(PurgeResult)) (PurgeSummary, error) {
	sum := PurgeSummary{DryRun: opts.DryRun}
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "status", Value: StatusTerminated}, {Key: "retention.shredAt", Value: bson.D{{Key: "$lte", Value: opts.Now.UTC()}}}},
		bson.D{{Key: "status", Value: StatusShredded}, {Key: "cleanupPending", Value: true}},
	}}}
	cur, err := s.customers().Find(ctx, filter, options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "retention", Value: 1}}).
		SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return sum, fmt.Errorf("purge: find due customers: %w", err)
	}
	var due []customerDoc
	if err := cur.All(ctx, &due); err != nil {
		return sum, fmt.Errorf("purge: find due customers: %w", err)
	}
	owner := s.leaseOwner()
	for _, d := range due {
		res := PurgeResult{CustomerID: d.ID}
		if d.Retention != nil && d.Retention.ShredAt != nil {
			res.ShredAt = d.Retention.ShredAt.UTC()
		}
		if opts.DryRun {
			res.Outcome = OutcomeWouldShred
		} else {
			_, err := s.shred(ctx, d.ID, owner)
			switch {
			case errors.Is(err, ErrLeaseHeld):
				s.cfg.Logger.InfoContext(ctx, "purge: customer under another run's lease, skipped", "customerId", d.ID)
				continue
			case errors.Is(err, errAlreadyShredded):
				// Another run finished it between our query and our lease.
				continue
			case err != nil:
				res.Outcome, res.Err = OutcomeFailed, err
				sum.Failed++
			default:
				res.Outcome = OutcomeShredded
				sum.Shredded++
			}
		}
		sum.Due++
		report(res)
	}
	return sum, nil
}

// errAlreadyShredded: the customer was completely shredded already.
var errAlreadyShredded = errors.New("already shredded")

// leaseOwner names one run (or one NO_RETENTION terminate call) in leases.
func (s *Service) leaseOwner() string {
	b := make([]byte, 8)
	rand.Read(b)
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// shred destroys a terminated customer's data, in an order where every step
// is idempotent and a run killed at any point is finished by the next one:
// take the lease, delete the key, mark SHREDDED (one change, one event),
// drop the customer's database, make sure the sub-account is closed, and
// clear the cleanup mark.
func (s *Service) shred(ctx context.Context, id, owner string) (*customerDoc, error) {
	lease := "shred:" + id
	if err := s.takeLease(ctx, lease, owner); err != nil {
		return nil, err
	}
	defer s.releaseLease(context.WithoutCancel(ctx), lease, owner)

	doc, err := s.find(ctx, "", id)
	if err != nil {
		return nil, err
	}
	switch doc.Status {
	case StatusTerminated:
		if err := s.cfg.Keyring.Destroy(ctx, id); err != nil {
			return nil, fmt.Errorf("destroy key: %w", err)
		}
		now := s.now()
		nxt := next(doc, now)
		nxt.Status, nxt.ShreddedAt = StatusShredded, &now
		nxt.Label, nxt.ContactInfo, nxt.CleanupPending = nil, nil, true
		if nxt.Twilio != nil {
			nxt.Twilio.AuthToken = nil
		}
		if err := s.change(ctx, doc, nxt, EventShredded, nil); err != nil {
			return nil, fmt.Errorf("mark shredded: %w", err)
		}
		doc = nxt
	case StatusShredded:
		if !doc.CleanupPending {
			return doc, errAlreadyShredded
		}
	default:
		return nil, &TransitionError{From: doc.Status, Action: "shred"}
	}

	if err := s.cfg.DropCustomerData(ctx, id); err != nil {
		return nil, fmt.Errorf("drop customer data: %w", err)
	}
	if doc.Twilio != nil && doc.Twilio.Status != SubaccountClosed {
		if err := s.cfg.Twilio.SetSubaccountStatus(ctx, doc.Twilio.AccountSID, SubaccountClosed); err != nil {
			return nil, fmt.Errorf("close sub-account: %w", err)
		}
	}
	// The cleanup mark is bookkeeping, not a lifecycle change: no new version.
	if _, err := s.customers().UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: doc.Version}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "cleanupPending", Value: ""}}}}); err != nil {
		return nil, fmt.Errorf("clear cleanup mark: %w", err)
	}
	doc.CleanupPending = false
	return doc, nil
}
