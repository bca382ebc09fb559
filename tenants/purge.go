package tenants

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
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
	// The due customers are a range of the shred-date index; the shreds a
	// killed run left unfinished are the few cleanup marks.
	due, err := s.dueCustomers(ctx, opts.Now.UTC())
	if err != nil {
		return sum, fmt.Errorf("purge: find due customers: %w", err)
	}
	cur, err := s.cleanups().Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return sum, fmt.Errorf("purge: find unfinished shreds: %w", err)
	}
	var unfinished []cleanupDoc
	if err := cur.All(ctx, &unfinished); err != nil {
		return sum, fmt.Errorf("purge: find unfinished shreds: %w", err)
	}
	for _, u := range unfinished {
		if !slices.ContainsFunc(due, func(d customerDoc) bool { return d.ID == u.ID }) {
			due = append(due, customerDoc{ID: u.ID})
		}
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
			_, err := s.shred(ctx, d.ID, owner, opts.Now)
			switch {
			case errors.Is(err, ErrLeaseHeld):
				s.cfg.Logger.InfoContext(ctx, "purge: customer under another run's lease, skipped", "customerId", d.ID)
				continue
			case errors.Is(err, errAlreadyShredded), errors.Is(err, errNotDue):
				// Another run finished it between our query and our lease,
				// or its retention changed meanwhile (a legal hold).
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

// How a shred checked that the key is gone: the canary sealed under it no
// longer opens; or, for a customer whose key a run from before canaries
// destroyed, the keyring no longer has the key.
const (
	VerificationCanary = "canary-open-failed"
	VerificationNoKey  = "key-not-found"
)

// ErrErasureUnverified: after the key was destroyed, the canary still
// opened. The shred fails (and is retried by the next purge).
var ErrErasureUnverified = errors.New("erasure not verified: the canary still opens")

// prepareShred makes sure the customer has a canary and a cleanup mark
// naming its key, before the key is destroyed. A run killed after the key
// is gone finds both already there.
func (s *Service) prepareShred(ctx context.Context, id string) (*cleanupDoc, error) {
	mark := &cleanupDoc{ID: id}
	keyID, masterKeyID, err := s.cfg.Keyring.KeyInfo(ctx, id)
	switch {
	case err == nil:
		mark.KeyID, mark.MasterKeyID = keyID, masterKeyID
		c, err := s.cfg.Keyring.Cipher(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("prepare shred: %w", err)
		}
		if err := s.ensureCanary(ctx, c); err != nil {
			return nil, fmt.Errorf("prepare shred: %w", err)
		}
	case !errors.Is(err, crypto.ErrKeyNotFound):
		return nil, fmt.Errorf("prepare shred: %w", err)
	}
	_, err = s.cleanups().InsertOne(ctx, mark)
	if mongo.IsDuplicateKeyError(err) {
		// An earlier run's mark: it knew the key while it still existed.
		err = s.cleanups().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(mark)
	}
	if err != nil {
		return nil, fmt.Errorf("mark cleanup: %w", err)
	}
	return mark, nil
}

// keyGone reports whether the customer's key no longer exists.
func (s *Service) keyGone(ctx context.Context, id string) (bool, error) {
	_, _, err := s.cfg.Keyring.KeyInfo(ctx, id)
	if errors.Is(err, crypto.ErrKeyNotFound) {
		return true, nil
	}
	return false, err
}

// shredUnderWay reports whether a shred of the customer has begun (its
// cleanup mark exists): from then on its retention cannot change, since the
// key may already be gone.
func (s *Service) shredUnderWay(ctx context.Context, id string) (bool, error) {
	n, err := s.cleanups().CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return false, fmt.Errorf("find cleanup mark: %w", err)
	}
	return n > 0, nil
}

// ensureCanary seals a canary under the customer's key once.
func (s *Service) ensureCanary(ctx context.Context, c *crypto.Cipher) error {
	value := make([]byte, 32)
	rand.Read(value)
	sealed, err := c.Seal(canaryField(c.CustomerID()), value)
	if err != nil {
		return err
	}
	_, err = s.cfg.Control.Collection(canariesColl).InsertOne(ctx, canaryDoc{ID: c.CustomerID(), Sealed: sealed})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("seal canary: %w", err)
	}
	return nil
}

func canaryField(id string) crypto.Field {
	return crypto.Field{Collection: canariesColl, DocumentID: id, Name: "canary"}
}

// verifyErasure opens the customer's canary the way every read opens data,
// through the keyring, and succeeds only if that fails because the key is
// gone. It returns how it checked.
func (s *Service) verifyErasure(ctx context.Context, id string) (string, error) {
	var canary canaryDoc
	err := s.cfg.Control.Collection(canariesColl).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&canary)
	noCanary := errors.Is(err, mongo.ErrNoDocuments)
	if err != nil && !noCanary {
		return "", fmt.Errorf("verify erasure: read canary: %w", err)
	}
	c, err := s.cfg.Keyring.Cipher(ctx, id)
	switch {
	case errors.Is(err, crypto.ErrKeyNotFound) && noCanary:
		return VerificationNoKey, nil
	case errors.Is(err, crypto.ErrKeyNotFound):
		return VerificationCanary, nil
	case err != nil:
		return "", fmt.Errorf("verify erasure: %w", err)
	case noCanary:
		return "", ErrErasureUnverified // the key is still there
	}
	if _, err := c.Open(canaryField(id), canary.Sealed); err == nil {
		return "", ErrErasureUnverified
	}
	return VerificationCanary, nil
}

// errNotDue: the customer's retention does not end by the run's now (it
// changed after the run found it due).
var errNotDue = errors.New("not due")

// leaseOwner names one run (or one NO_RETENTION terminate call) in leases.
func (s *Service) leaseOwner() string {
	b := make([]byte, 8)
	rand.Read(b)
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// shred destroys a terminated customer's data, in an order where every step
// is idempotent and a run killed at any point is finished by the next one:
// take the lease, mark the cleanup as pending, delete the key, mark
// SHREDDED (one change, one event: its claim decides, so two runs never
// both record it), drop the customer's database, make sure the sub-account
// is closed, and clear the cleanup mark.
func (s *Service) shred(ctx context.Context, id, owner string, due time.Time) (*customerDoc, error) {
	lease, err := store.TakeLease(ctx, s.cfg.Control.Collection(locksColl), "shred:"+id, owner, s.now(), s.cfg.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("take lease: %w", err)
	}
	defer func() {
		if err := store.ReleaseLease(context.WithoutCancel(ctx), s.cfg.Control.Collection(locksColl), lease, s.now()); err != nil {
			s.cfg.Logger.WarnContext(ctx, "release lease", "customerId", id, "err", err)
		}
	}()

	doc, err := s.customers.Latest(ctx, id)
	if err != nil {
		return nil, storeErr("shred", err)
	}
	notDue := func(d *customerDoc) bool {
		r := d.Retention
		return r == nil || r.ShredAt == nil || r.ShredAt.After(due)
	}
	finish := false // the key is gone already: finish whatever the retention
	switch doc.Status {
	case StatusTerminated:
		if notDue(doc) {
			// Not due. A mark left by a run that stopped before destroying
			// the key goes; once the key is gone there is nothing left to
			// keep, so the shred is finished whatever the retention says
			// (a hold is refused from the moment the mark exists).
			gone, err := s.keyGone(ctx, id)
			if err != nil {
				return nil, err
			}
			if !gone {
				if _, err := s.cleanups().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
					return nil, fmt.Errorf("clear cleanup mark: %w", err)
				}
				return nil, errNotDue
			}
			if n, err := s.cleanups().CountDocuments(ctx, bson.D{{Key: "_id", Value: id}}); err != nil || n == 0 {
				if err != nil {
					return nil, fmt.Errorf("find cleanup mark: %w", err)
				}
				return nil, errNotDue
			}
			finish = true
		}
		// The canary exists before the key can go (a customer from before
		// canaries gets one now); then the mark: once the key is gone, only
		// it says that the database and the sub-account still need the
		// purge, and which key was destroyed.
		mark, err := s.prepareShred(ctx, id)
		if err != nil {
			return nil, err
		}
		doc, err = s.update(ctx, "mark shredded", "", id, doc.Version, func(cur *customerDoc) (bool, error) {
			if cur.Status != StatusTerminated {
				return false, &TransitionError{From: cur.Status, Action: "shred"}
			}
			if notDue(cur) && !finish {
				return false, errNotDue
			}
			return false, nil
		}, func(cur *customerDoc, now time.Time) (*customerDoc, string, map[string]any, error) {
			if err := s.cfg.Keyring.Destroy(ctx, id); err != nil {
				return nil, "", nil, fmt.Errorf("destroy key: %w", err)
			}
			destroyed := s.now()
			if s.cfg.ScrubKeys != nil {
				if err := s.cfg.ScrubKeys(ctx); err != nil {
					return nil, "", nil, fmt.Errorf("scrub the destroyed key: %w", err)
				}
			}
			method, err := s.verifyErasure(ctx, id)
			if err != nil {
				return nil, "", nil, err
			}
			nxt := next(cur, now)
			nxt.Status, nxt.ShreddedAt = StatusShredded, &now
			nxt.Erasure = &erasureDoc{KeyID: mark.KeyID, MasterKeyID: mark.MasterKeyID, KeyDestroyedAt: destroyed,
				Verification: method, VerifiedAt: s.now()}
			nxt.Label, nxt.ContactInfo = nil, nil
			if nxt.Twilio != nil {
				nxt.Twilio.AuthToken = nil
			}
			return nxt, EventShredded, nil, nil
		})
		if errors.Is(err, errNotDue) {
			// Its retention changed meanwhile: nothing to finish.
			if _, derr := s.cleanups().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); derr != nil {
				return nil, errors.Join(err, derr)
			}
		}
		if err != nil {
			return nil, err
		}
	case StatusShredded:
		n, err := s.cleanups().CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
		if err != nil {
			return nil, fmt.Errorf("find cleanup mark: %w", err)
		}
		if n == 0 {
			return doc, errAlreadyShredded
		}
	default:
		return nil, &TransitionError{From: doc.Status, Action: "shred"}
	}

	deleted, err := s.deleteCustomerData(ctx, id)
	if err != nil {
		return nil, err
	}
	deletedAt := s.now()
	if doc.Twilio != nil && doc.Twilio.Status != SubaccountClosed {
		err := s.cfg.Twilio.SetSubaccountStatus(ctx, doc.Twilio.AccountSID, SubaccountClosed)
		if err != nil && !errors.Is(err, ErrSubaccountNotFound) {
			return nil, fmt.Errorf("close sub-account: %w", err)
		}
	}
	// The certificate before the mark goes: a run killed in between issues
	// it next time.
	if err := s.issueCertificate(ctx, doc, deletedAt, deleted); err != nil {
		return nil, err
	}
	if _, err := s.cleanups().DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return nil, fmt.Errorf("clear cleanup mark: %w", err)
	}
	return doc, nil
}

// deleteCustomerData deletes the customer's ranges and returns how many
// documents the shred deleted. The count is taken once, before the first
// delete, and kept in the cleanup mark: a run killed half-way and finished
// by the next one reports the same number. Nothing writes the customer's
// data once its key is gone, so the count is what the deletes remove.
func (s *Service) deleteCustomerData(ctx context.Context, id string) (int64, error) {
	var mark cleanupDoc
	if err := s.cleanups().FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&mark); err != nil {
		return 0, fmt.Errorf("read cleanup mark: %w", err)
	}
	if mark.Documents == nil {
		n, err := s.cfg.Data.CountCustomerData(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("count customer data: %w", err)
		}
		mark.Documents = &n
		// Only this shred (under its lease) writes the mark.
		if _, err := s.cleanups().ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, mark); err != nil {
			return 0, fmt.Errorf("record the count of customer data: %w", err)
		}
	}
	if _, err := s.cfg.Data.DeleteCustomerData(ctx, id); err != nil {
		return 0, fmt.Errorf("delete customer data: %w", err)
	}
	return *mark.Documents, nil
}
