package tenants

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// subaccountRoutesColl maps a Twilio sub-account to its customer, so a
// Twilio callback finds the customer by AccountSid with one _id read.
const subaccountRoutesColl = "subaccount_routes"

// subaccountRouteDoc is one sub-account's route. A sub-account belongs to
// one customer for ever, so a route is written once and never changed.
type subaccountRouteDoc struct {
	ID         string `bson:"_id"` // AccountSid
	CustomerID string `bson:"customerId"`
}

func (s *Service) subaccountRoutes() *mongo.Collection {
	return s.cfg.Control.Collection(subaccountRoutesColl)
}

// routeSubaccount writes the route of sub-account sid to customerID;
// writing it again changes nothing.
func (s *Service) routeSubaccount(ctx context.Context, sid, customerID string) error {
	_, err := s.subaccountRoutes().InsertOne(ctx, subaccountRouteDoc{ID: sid, CustomerID: customerID})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("route sub-account: %w", err)
	}
	return nil
}

// SubaccountCustomer returns the id of the customer whose Twilio
// sub-account is accountSID, or ErrNotFound. The route is written when the
// customer is activated (before it becomes ACTIVE), so a customer found
// here may not be ACTIVE: the caller checks its status.
func (s *Service) SubaccountCustomer(ctx context.Context, accountSID string) (string, error) {
	var r subaccountRouteDoc
	err := s.subaccountRoutes().FindOne(ctx, bson.D{{Key: "_id", Value: accountSID}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("find sub-account route: %w", err)
	}
	return r.CustomerID, nil
}

// RepairSubaccountRoutes writes the missing route of every ACTIVE or
// DEACTIVATED customer with a sub-account, and returns how many it wrote.
// Customers activated before routes were written at activation got theirs
// only with their first phone number; this gives the others theirs. It is
// idempotent and resumable: run again (after a crash, say), it writes only
// what is still missing. It reads every customer, so it is a step of
// `switchboard migrate`, not of every start.
func (s *Service) RepairSubaccountRoutes(ctx context.Context) (int, error) {
	const op = "repair sub-account routes"
	cur, err := s.customersColl().Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer cur.Close(ctx)
	n := 0
	for cur.Next(ctx) {
		var ref struct {
			ID string `bson:"_id"`
		}
		if err := cur.Decode(&ref); err != nil {
			return n, fmt.Errorf("%s: %w", op, err)
		}
		// The latest claim decides the status: a change a crash left
		// unapplied counts.
		doc, err := s.customers.Latest(ctx, ref.ID)
		if err != nil {
			return n, fmt.Errorf("%s: %w", op, err)
		}
		if (doc.Status != StatusActive && doc.Status != StatusDeactivated) || doc.Twilio == nil || doc.Twilio.AccountSID == "" {
			continue
		}
		_, err = s.subaccountRoutes().InsertOne(ctx, subaccountRouteDoc{ID: doc.Twilio.AccountSID, CustomerID: doc.ID})
		switch {
		case err == nil:
			n++
		case !mongo.IsDuplicateKeyError(err):
			return n, fmt.Errorf("%s: %w", op, err)
		}
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("%s: %w", op, err)
	}
	return n, nil
}
