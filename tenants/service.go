package tenants

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"

	"github.com/switchboard/switchboard"
)

// Config holds what a Service needs. Control is the control database
// (partners, customers, events, locks); DropCustomerData drops a customer's
// own database when it is shredded.
type Config struct {
	Control          *mongo.Database
	Keyring          Keyring
	Twilio           Twilio
	DropCustomerData func(ctx context.Context, customerID string) error
	Logger           *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LeaseTTL bounds how long a purge lease blocks other runs; 0 means 5 minutes.
	LeaseTTL time.Duration
}

// Service runs the customer lifecycle. It is safe for concurrent use.
type Service struct {
	cfg       Config
	customers *store.Versioned[customerDoc, eventDoc]
	partners  partnerCache
}

// NewService returns a Service over cfg.
func NewService(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, customers: newCustomers(cfg.Control, cfg.Now)}
}

// now is the clock at the precision the database keeps (milliseconds, UTC).
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// RegisterInput is the body of POST /v1/customers. PartnerID, if set, must be
// the caller's own id.
type RegisterInput struct {
	Space      string
	IndustryID string
	Label      string
	PartnerID  *string
}

// RetentionInput is the retention of a terminate request, before validation.
type RetentionInput struct {
	Strategy string
	Period   *int
}

// ListQuery selects a page of customers. Status "" means every status;
// Limit is already within 1..200; Cursor is "" for the first page.
type ListQuery struct {
	Status Status
	Limit  int
	Cursor string
}

// PageQuery selects a page of a list. Limit is already within 1..200.
type PageQuery struct {
	Limit  int
	Cursor string
}

var spacePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// Sealed fields of a customer document.
func labelField(id string) crypto.Field {
	return crypto.Field{Collection: customersColl, DocumentID: id, Name: "label"}
}

// storedContactInfo is the sealed form of contact info. Its JSON names are
// a stored format, fixed here (they are the Go names the first format used),
// so renaming a field of ContactInfo cannot turn stored values into nulls.
type storedContactInfo struct {
	BusinessName  string  `json:"BusinessName"`
	SecondaryName *string `json:"SecondaryName"`
	PhoneNumber   *string `json:"PhoneNumber"`
	AddressLine1  string  `json:"AddressLine1"`
	AddressLine2  *string `json:"AddressLine2"`
	PostalCode    string  `json:"PostalCode"`
	Province      *string `json:"Province"`
	Country       string  `json:"Country"`
}

func sealContactInfo(c *crypto.Cipher, id string, info ContactInfo) ([]byte, error) {
	plain, err := json.Marshal(storedContactInfo(info))
	if err != nil {
		return nil, err
	}
	return c.Seal(contactInfoField(id), plain)
}

func openContactInfo(c *crypto.Cipher, id string, sealed []byte) (*ContactInfo, error) {
	b, err := c.Open(contactInfoField(id), sealed)
	if err != nil {
		return nil, err
	}
	var st storedContactInfo
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	info := ContactInfo(st)
	return &info, nil
}

func contactInfoField(id string) crypto.Field {
	return crypto.Field{Collection: customersColl, DocumentID: id, Name: "contactInfo"}
}

func authTokenField(id string) crypto.Field {
	return crypto.Field{Collection: customersColl, DocumentID: id, Name: "twilio.authToken"}
}

// subaccountName is the FriendlyName of a customer's sub-account: it carries
// the customer id (and nothing personal) so a retry can find it again.
func subaccountName(customerID string) string { return "switchboard customer " + customerID }

func newEvent(typ string, at time.Time, data map[string]any) (eventDoc, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return eventDoc{}, err
	}
	if data == nil {
		data = map[string]any{}
	}
	return eventDoc{ID: id.String(), Type: typ, At: at, Data: data}, nil
}

// Register creates a customer of p in status REGISTERED, with its own key.
func (s *Service) Register(ctx context.Context, p Partner, in RegisterInput) (Customer, error) {
	var verr switchboard.ValidationError
	if !spacePattern.MatchString(in.Space) {
		verr.Add("space", "must match ^[a-z0-9][a-z0-9-]{1,62}$")
	}
	if in.IndustryID == "" {
		verr.Add("industryId", "is required")
	} else if !knownIndustry(in.IndustryID) {
		verr.Add("industryId", "is not in the industry catalogue")
	}
	label := strings.TrimSpace(in.Label)
	if n := utf8.RuneCountInString(label); n < 1 || n > 200 {
		verr.Add("label", "must be 1 to 200 characters")
	}
	if in.PartnerID != nil && *in.PartnerID != p.ID {
		verr.Add("partnerId", "must be the calling partner's own id")
	}
	if err := verr.Err(); err != nil {
		return Customer{}, err
	}
	// A taken space is found by the unique index on insert, not by a query
	// first: a query would scan every customer on the embedded engine.
	uid, err := uuid.NewV7()
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	id := uid.String()
	// The key comes first: a crash after it leaves an unused key, never a
	// customer without one.
	if err := s.cfg.Keyring.Create(ctx, id); err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	c, err := s.cfg.Keyring.Cipher(ctx, id)
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	sealed, err := c.Seal(labelField(id), []byte(label))
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	now := s.now()
	doc := &customerDoc{
		ID: id, PartnerID: p.ID, Space: in.Space, IndustryID: in.IndustryID,
		Status: StatusRegistered, Version: 1, Label: sealed,
		CreatedAt: now, UpdatedAt: now,
	}
	ev, err := newEvent(EventRegistered, now, map[string]any{"space": in.Space, "industryId": in.IndustryID})
	if err != nil {
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	if err := s.customers.Create(ctx, id, doc, ev); err != nil {
		// The key belongs to no customer now.
		if derr := s.cfg.Keyring.Destroy(context.WithoutCancel(ctx), id); derr != nil {
			s.cfg.Logger.WarnContext(ctx, "destroy unused customer key", "customerId", id, "err", derr)
		}
		if mongo.IsDuplicateKeyError(err) {
			return Customer{}, ErrSpaceTaken
		}
		return Customer{}, fmt.Errorf("register customer: %w", err)
	}
	return s.view(ctx, doc, c)
}

// Customers lists p's customers, newest first, and returns the cursor of the
// next page ("" when there is none).
func (s *Service) Customers(ctx context.Context, p Partner, q ListQuery) ([]Customer, string, error) {
	filter := bson.D{{Key: "partnerId", Value: p.ID}}
	if q.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: q.Status})
	}
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 1)
		if err != nil {
			return nil, "", err
		}
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: last[0]}}})
	}
	docs, more, err := page[customerDoc](ctx, s.customersColl(), filter, bson.D{{Key: "_id", Value: -1}}, q.Limit)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	out := make([]Customer, 0, len(docs))
	for i := range docs {
		c, err := s.view(ctx, &docs[i], nil)
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
	}
	next := ""
	if more {
		next = switchboard.EncodeCursor(docs[len(docs)-1].ID)
	}
	return out, next, nil
}

// Customer returns one of p's customers.
func (s *Service) Customer(ctx context.Context, p Partner, id string) (Customer, error) {
	doc, err := s.find(ctx, p.ID, id)
	if err != nil {
		return Customer{}, err
	}
	return s.view(ctx, doc, nil)
}

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
	retention, err := in.validate(now)
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
		data := map[string]any{"strategy": string(retention.Strategy)}
		if retention.Period != nil {
			data["period"] = *retention.Period
		}
		if retention.ShredAt != nil {
			data["shredAt"] = *retention.ShredAt
		}
		return nxt, EventTerminated, data, nil
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

// shredNow shreds a customer that is due at once (NO_RETENTION). If a purge
// run holds its lease, it waits a little for that run to finish it.
func (s *Service) shredNow(ctx context.Context, id string) (*customerDoc, error) {
	owner := s.leaseOwner()
	for attempt := 0; ; attempt++ {
		doc, err := s.shred(ctx, id, owner)
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

// Events returns a page of a customer's lifecycle events, oldest first.
// Event n is the claim of version n, so a page is a handful of reads by _id
// whatever the number of customers or events stored.
func (s *Service) Events(ctx context.Context, p Partner, id string, q PageQuery) ([]Event, string, error) {
	doc, err := s.find(ctx, p.ID, id)
	if err != nil {
		return nil, "", err
	}
	from := int64(1)
	if q.Cursor != "" {
		last, err := switchboard.DecodeCursor(q.Cursor, 1)
		if err != nil {
			return nil, "", err
		}
		v, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil || v < 1 {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		from = v + 1
	}
	// The cached version may lag behind a claim; the claims past it are
	// read below, so a page never misses an event that exists.
	to := min(doc.Version, from+int64(q.Limit)-1)
	claims := make([]*customerClaim, 0, max(to-from+1, 0))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for v := from; v <= to; v++ {
		g.Go(func() error {
			c, err := s.customers.Claim(gctx, id, v)
			if err != nil {
				return fmt.Errorf("list events: %w", err)
			}
			mu.Lock()
			claims = append(claims, c)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, "", err
	}
	for len(claims) < q.Limit {
		c, err := s.customers.Claim(ctx, id, to+1)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
		claims = append(claims, c)
		to++
	}
	slices.SortFunc(claims, func(a, b *customerClaim) int { return cmp.Compare(a.Version, b.Version) })
	out := make([]Event, len(claims))
	for i, c := range claims {
		out[i] = Event{ID: c.Event.ID, CustomerID: id, Type: c.Event.Type, At: c.Event.At.UTC(), Version: c.Version, Data: c.Event.Data}
	}
	nextCursor := ""
	if len(out) == q.Limit {
		if _, err := s.customers.Claim(ctx, id, to+1); err == nil {
			nextCursor = switchboard.EncodeCursor(strconv.FormatInt(to, 10))
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
	}
	return out, nextCursor, nil
}

// Cipher returns the cipher of a customer whose data may still be read: an
// error matching ErrDataShredded once it is SHREDDED (or its key is gone),
// whatever a cache still holds, and ErrNotFound for no such customer.
func (s *Service) Cipher(ctx context.Context, customerID string) (*crypto.Cipher, error) {
	var doc struct {
		Status Status `bson:"status"`
	}
	err := s.customersColl().FindOne(ctx, bson.D{{Key: "_id", Value: customerID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("customer cipher: %w", err)
	}
	if doc.Status == StatusShredded {
		return nil, ErrDataShredded
	}
	c, err := s.cfg.Keyring.Cipher(ctx, customerID)
	if errors.Is(err, crypto.ErrKeyNotFound) {
		return nil, ErrDataShredded
	}
	if err != nil {
		return nil, fmt.Errorf("customer cipher: %w", err)
	}
	return c, nil
}

// view opens a customer document for the API. c may be nil; it is fetched
// when something sealed must be opened. A SHREDDED customer (or one whose key
// a half-finished purge already destroyed) shows null label and contact info.
func (s *Service) view(ctx context.Context, doc *customerDoc, c *crypto.Cipher) (Customer, error) {
	out := Customer{
		ID: doc.ID, PartnerID: doc.PartnerID, Space: doc.Space, IndustryID: doc.IndustryID,
		Status: doc.Status, Version: doc.Version,
		CreatedAt: doc.CreatedAt.UTC(), UpdatedAt: doc.UpdatedAt.UTC(),
		ActivatedAt: utc(doc.ActivatedAt), DeactivatedAt: utc(doc.DeactivatedAt),
		TerminatedAt: utc(doc.TerminatedAt), ShreddedAt: utc(doc.ShreddedAt),
	}
	if doc.Twilio != nil {
		out.Twilio = &TwilioAccount{AccountSID: doc.Twilio.AccountSID, Status: doc.Twilio.Status}
	}
	if doc.Retention != nil {
		out.Retention = &Retention{Strategy: doc.Retention.Strategy, Period: doc.Retention.Period, ShredAt: utc(doc.Retention.ShredAt)}
	}
	if doc.Status == StatusShredded || (doc.Label == nil && doc.ContactInfo == nil) {
		return out, nil
	}
	if c == nil {
		var err error
		c, err = s.cfg.Keyring.Cipher(ctx, doc.ID)
		if errors.Is(err, crypto.ErrKeyNotFound) {
			return out, nil
		}
		if err != nil {
			return Customer{}, fmt.Errorf("open customer: %w", err)
		}
	}
	if doc.Label != nil {
		b, err := c.Open(labelField(doc.ID), doc.Label)
		if err != nil {
			return Customer{}, fmt.Errorf("open customer label: %w", err)
		}
		label := string(b)
		out.Label = &label
	}
	if doc.ContactInfo != nil {
		info, err := openContactInfo(c, doc.ID, doc.ContactInfo.Sealed)
		if err != nil {
			return Customer{}, fmt.Errorf("open customer contact info: %w", err)
		}
		out.ContactInfo = info
	}
	return out, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Status returns a customer's lifecycle status (ErrNotFound for no such
// customer). Token verification reads it through a short cache.
func (s *Service) Status(ctx context.Context, customerID string) (Status, error) {
	var doc struct {
		Status Status `bson:"status"`
	}
	err := s.customersColl().FindOne(ctx, bson.D{{Key: "_id", Value: customerID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("customer status: %w", err)
	}
	return doc.Status, nil
}
