package messages

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/tenants"
)

// BuyInput is POST /v1/customers/{id}/phone-numbers: a number, or a
// country (and area code) to search in.
type BuyInput struct {
	PhoneNumber *string
	Country     *string
	AreaCode    *string
}

var areaCodeRE = regexp.MustCompile(`^[0-9]{2,5}$`)

// InboundPath and StatusPath are the Twilio-facing webhooks.
const (
	InboundPath = "/v1/webhooks/twilio/inbound"
	StatusPath  = "/v1/webhooks/twilio/status"
)

// activeAccount returns the messaging account of partner's customer, which
// must be ACTIVE with a sub-account.
func (s *Service) activeAccount(ctx context.Context, partnerID, customerID string) (tenants.MessagingAccount, error) {
	a, err := s.cfg.Account(ctx, partnerID, customerID)
	if err != nil {
		return a, err
	}
	if a.Status != tenants.StatusActive || a.AccountSID == "" {
		return a, switchboard.ErrCustomerNotActive
	}
	return a, nil
}

// BuyNumber buys a number into partner's customer's sub-account, with its
// inbound webhook set, and records it.
func (s *Service) BuyNumber(ctx context.Context, partnerID, customerID string, in BuyInput) (PhoneNumber, error) {
	var want, country, area string
	var errs []switchboard.FieldError
	switch {
	case in.PhoneNumber != nil && (in.Country != nil || in.AreaCode != nil):
		errs = append(errs, switchboard.FieldError{Field: "phoneNumber", Message: "give either phoneNumber or country (and areaCode), not both"})
	case in.PhoneNumber != nil:
		n, ok := switchboard.NormalizePhone(*in.PhoneNumber, "")
		if !ok || (*in.PhoneNumber)[0] != '+' {
			errs = append(errs, switchboard.FieldError{Field: "phoneNumber", Message: "must be a phone number in E.164 form"})
		}
		want = n
	case in.Country != nil:
		c, ok := switchboard.NormalizeCountry(*in.Country)
		if !ok {
			errs = append(errs, switchboard.FieldError{Field: "country", Message: "must be an ISO 3166-1 alpha-2 country code"})
		}
		country = c
		if in.AreaCode != nil {
			if !areaCodeRE.MatchString(*in.AreaCode) {
				errs = append(errs, switchboard.FieldError{Field: "areaCode", Message: "must be 2 to 5 digits"})
			}
			area = *in.AreaCode
		}
	default:
		errs = append(errs, switchboard.FieldError{Field: "phoneNumber", Message: "give phoneNumber, or country to search in"})
	}
	if len(errs) > 0 {
		return PhoneNumber{}, &switchboard.ValidationError{Fields: errs}
	}
	acct, err := s.activeAccount(ctx, partnerID, customerID)
	if err != nil {
		return PhoneNumber{}, err
	}
	h, err := s.Open(ctx, customerID)
	if err != nil {
		return PhoneNumber{}, err
	}
	// A purchase a crash (or a lost answer) left unrecorded is recorded
	// now; a search repeated after one gets that number, not another.
	adopted, err := h.adoptPurchases(ctx, acct)
	if err != nil {
		return PhoneNumber{}, err
	}
	if want != "" {
		var r numberRoute
		err := s.control(numberRouteColl).FindOne(ctx, bson.D{{Key: "_id", Value: s.routeID(want)}}).Decode(&r)
		if err == nil && r.CustomerID != customerID {
			return PhoneNumber{}, ErrNumberUnavailable
		}
	} else {
		if adopted != nil {
			return *adopted, nil
		}
		want, err = s.cfg.Twilio.SearchNumber(ctx, acct.AccountSID, country, area)
		if err != nil {
			return PhoneNumber{}, numberErr(err)
		}
	}
	if err := h.notePurchase(ctx, want, in.PhoneNumber == nil); err != nil {
		return PhoneNumber{}, err
	}
	n, err := s.cfg.Twilio.BuyNumber(ctx, acct.AccountSID, want, s.cfg.PublicURL+InboundPath)
	if TwilioCode(err) == CodeNumberUnavailable {
		// Ours already (a purchase whose answer or record was lost)?
		if got, ferr := s.cfg.Twilio.FindNumber(ctx, acct.AccountSID, want); ferr == nil {
			n, err = got, nil
		}
	}
	if err != nil {
		return PhoneNumber{}, numberErr(err)
	}
	pn, err := h.recordNumber(ctx, acct, n)
	if err != nil {
		return PhoneNumber{}, err
	}
	return pn, h.forgetPurchase(ctx, n.PhoneNumber)
}

// purchaseDoc notes a number being bought, until it is recorded: its _id is
// the number's blind index, the number itself sealed.
type purchaseDoc struct {
	ID     string    `bson:"_id"`
	Sealed []byte    `bson:"sealed"`
	Search bool      `bson:"search"` // bought by a search
	At     time.Time `bson:"at"`
}

// purchaseGrace is how old a noted purchase must be before a later request
// judges it: one still on its way (Twilio answers within 15 s) is left to
// its own request.
const purchaseGrace = time.Minute

func (h *Handle) purchases() *store.Coll { return h.db.Collection("number_purchases") }

func (h *Handle) purchaseID(e164 string) string { return hex.EncodeToString(h.phoneIdx(e164)) }

// notePurchase notes a number about to be bought.
func (h *Handle) notePurchase(ctx context.Context, e164 string, search bool) error {
	id := h.purchaseID(e164)
	sealed, err := h.cipher.Seal(purchaseField(id), []byte(e164))
	if err != nil {
		return err
	}
	err = h.purchases().InsertOne(ctx, purchaseDoc{ID: id, Sealed: sealed, Search: search, At: h.s.now()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("note number purchase: %w", err)
	}
	return nil
}

func (h *Handle) forgetPurchase(ctx context.Context, e164 string) error {
	if _, err := h.purchases().DeleteID(ctx, h.purchaseID(e164)); err != nil {
		return fmt.Errorf("forget number purchase: %w", err)
	}
	return nil
}

// adoptPurchases settles the purchases noted more than purchaseGrace ago:
// one Twilio shows in the sub-account is recorded (the first bought by a
// search is returned), one it does not show never happened. The collection
// holds only unfinished purchases, so this reads nothing in the usual case.
func (h *Handle) adoptPurchases(ctx context.Context, acct tenants.MessagingAccount) (*PhoneNumber, error) {
	cur, err := h.purchases().Find(ctx, store.Range{})
	if err != nil {
		return nil, fmt.Errorf("number purchases: %w", err)
	}
	var docs []purchaseDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("number purchases: %w", err)
	}
	var adopted *PhoneNumber
	for _, d := range docs {
		if h.s.now().Sub(d.At) < purchaseGrace {
			continue
		}
		b, err := h.cipher.Open(purchaseField(d.ID), d.Sealed)
		if err != nil {
			return nil, fmt.Errorf("open number purchase: %w", err)
		}
		n, err := h.s.cfg.Twilio.FindNumber(ctx, acct.AccountSID, string(b))
		switch {
		case errors.Is(err, ErrTwilioNotFound):
		case err != nil:
			return nil, numberErr(err)
		default:
			pn, err := h.recordNumber(ctx, acct, n)
			if err != nil {
				return nil, err
			}
			if d.Search && adopted == nil {
				adopted = &pn
			}
		}
		if _, err := h.purchases().DeleteID(ctx, d.ID); err != nil {
			return nil, fmt.Errorf("forget number purchase: %w", err)
		}
	}
	return adopted, nil
}

// numberErr maps Twilio's refusals of a number to the API's.
func numberErr(err error) error {
	switch TwilioCode(err) {
	case CodeNumberUnavailable, CodeNoNumbersInArea:
		return fmt.Errorf("%w (Twilio error %d)", ErrNumberUnavailable, TwilioCode(err))
	case CodeNumberInvalid:
		return switchboard.Invalid("phoneNumber", "is not a number Twilio can buy")
	}
	if errors.Is(err, ErrTwilioRateLimited) {
		return fmt.Errorf("%w: %w", tenants.ErrUpstreamUnavailable, err)
	}
	return err
}

// recordNumber records a bought number: its route, then its document (whose
// id is derived from its Twilio SID, so recording it again is harmless).
func (h *Handle) recordNumber(ctx context.Context, acct tenants.MessagingAccount, n Number) (PhoneNumber, error) {
	s := h.s
	id := s.derivedID("number", h.customerID, n.SID)
	now := s.now()
	r := numberRoute{ID: s.routeID(n.PhoneNumber), CustomerID: h.customerID, AccountSID: acct.AccountSID, NumberID: id, At: now}
	if _, err := s.control(numberRouteColl).ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.ID}}, r, options.Replace().SetUpsert(true)); err != nil {
		return PhoneNumber{}, fmt.Errorf("route number: %w", err)
	}
	sealed, err := h.cipher.Seal(numberField(id), []byte(n.PhoneNumber))
	if err != nil {
		return PhoneNumber{}, err
	}
	d := numberDoc{ID: id, Sealed: sealed, TwilioSID: n.SID, SMS: n.SMS, MMS: n.MMS, CreatedAt: now}
	// The document's insert is the purchase's claim: its event is held
	// first (recording again holds the same event).
	if err := h.holdNumberEvent(ctx, acct.PartnerID, "phone_number.purchased", id, n.PhoneNumber); err != nil {
		return PhoneNumber{}, err
	}
	if err := h.db.Collection("phone_numbers").InsertOne(ctx, d); err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			return PhoneNumber{}, fmt.Errorf("record number: %w", err)
		}
		if err := h.db.Collection("phone_numbers").FindID(ctx, id).Decode(&d); err != nil {
			return PhoneNumber{}, fmt.Errorf("record number: %w", err)
		}
	}
	s.numbers.Remove(h.customerID)
	d.number = n.PhoneNumber
	return toNumber(d), nil
}

func toNumber(d numberDoc) PhoneNumber {
	return PhoneNumber{ID: d.ID, PhoneNumber: d.number, TwilioSID: d.TwilioSID, SMS: d.SMS, MMS: d.MMS, CreatedAt: d.CreatedAt.UTC()}
}

// numbersOf returns the customer's numbers, oldest first (the first is the
// default sender). It reads through a 5 s cache that this process's own
// purchases and releases clear.
func (h *Handle) numbersOf(ctx context.Context) ([]numberDoc, error) {
	if ns, ok := h.s.numbers.Get(h.customerID); ok {
		return ns, nil
	}
	cur, err := h.db.Collection("phone_numbers").Find(ctx, store.Range{})
	if err != nil {
		return nil, fmt.Errorf("list numbers: %w", err)
	}
	var ns []numberDoc
	if err := cur.All(ctx, &ns); err != nil {
		return nil, fmt.Errorf("list numbers: %w", err)
	}
	for i := range ns {
		b, err := h.cipher.Open(numberField(ns[i].ID), ns[i].Sealed)
		if err != nil {
			return nil, fmt.Errorf("open number: %w", err)
		}
		ns[i].number = string(b)
	}
	slices.SortFunc(ns, func(a, b numberDoc) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	h.s.numbers.Add(h.customerID, ns)
	return ns, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Numbers lists partner's customer's numbers, oldest first. A customer
// terminated (its sub-account closed, which released them at Twilio) has
// none.
func (s *Service) Numbers(ctx context.Context, partnerID, customerID string) ([]PhoneNumber, error) {
	a, err := s.cfg.Account(ctx, partnerID, customerID)
	if err != nil {
		return nil, err
	}
	if a.Status == tenants.StatusTerminated || a.Status == tenants.StatusShredded {
		return []PhoneNumber{}, nil
	}
	h, err := s.Open(ctx, customerID)
	if err != nil {
		return nil, err
	}
	s.numbers.Remove(customerID) // the partner sees what is stored now
	ns, err := h.numbersOf(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PhoneNumber, len(ns))
	for i, d := range ns {
		out[i] = toNumber(d)
	}
	return out, nil
}

// ReleaseNumber releases one of partner's customer's numbers at Twilio and
// forgets it.
func (s *Service) ReleaseNumber(ctx context.Context, partnerID, customerID, numberID string) error {
	acct, err := s.activeAccount(ctx, partnerID, customerID)
	if err != nil {
		return err
	}
	h, err := s.Open(ctx, customerID)
	if err != nil {
		return err
	}
	s.numbers.Remove(customerID)
	ns, err := h.numbersOf(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ns, func(d numberDoc) bool { return d.ID == numberID })
	if i < 0 {
		return ErrNumberNotFound
	}
	d := ns[i]
	// Twilio first: a crash after it is repaired by releasing again
	// (releasing a released number succeeds).
	if err := s.cfg.Twilio.ReleaseNumber(ctx, acct.AccountSID, d.TwilioSID); err != nil {
		return numberErr(err)
	}
	if _, err := s.control(numberRouteColl).DeleteOne(ctx, bson.D{{Key: "_id", Value: s.routeID(d.number)}}); err != nil {
		return fmt.Errorf("forget number route: %w", err)
	}
	if err := h.holdNumberEvent(ctx, acct.PartnerID, "phone_number.released", d.ID, d.number); err != nil {
		return err
	}
	if _, err := h.db.Collection("phone_numbers").DeleteID(ctx, d.ID); err != nil {
		return fmt.Errorf("forget number: %w", err)
	}
	s.numbers.Remove(customerID)
	return nil
}

// RouteNumber returns the customer and sub-account of a phone number
// (the sandbox's inbound command uses it).
func (s *Service) RouteNumber(ctx context.Context, e164 string) (customerID, accountSID string, err error) {
	var r numberRoute
	err = s.control(numberRouteColl).FindOne(ctx, bson.D{{Key: "_id", Value: s.routeID(e164)}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", "", ErrNumberNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("route number: %w", err)
	}
	return r.CustomerID, r.AccountSID, nil
}
