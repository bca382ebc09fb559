package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// CustomerCollections are the collections that hold customers' data, one
// set for all customers (a document's _id is "<customer id>/<logical id>").
// The list is fixed: a new customer creates no collection and no index.
var CustomerCollections = []string{
	"contacts", "contact_claims", "lookups", "timeline",
	"messages", "message_claims", "message_sids",
	"opt_outs", "opt_out_claims",
	"phone_numbers", "number_purchases",
	// Pushed events: the customer's apps' endpoints, their deliveries
	// (each with its attempts' claims) and the sealed bodies not yet
	// delivered.
	"webhook_endpoints", "webhook_endpoint_claims",
	"webhook_deliveries", "webhook_delivery_claims", "webhook_bodies",
	// Index entries of every collection above (see index.go), and the
	// creations a crash may have left between claim and document.
	"indexes", "pending",
}

// Sep separates a customer's id from the rest of an _id.
const Sep = "/"

// Tenant is the handle of one customer's data. Every _id, range and index
// key it builds starts with the customer's id, so no method of it can reach
// another customer's documents; there is no other way into these
// collections.
type Tenant struct {
	id string
	db *mongo.Database
}

// Tenant returns the handle of one customer's data.
func (db *DB) Tenant(customerID string) *Tenant {
	return &Tenant{id: customerID, db: db.Client.Database(db.cellName(customerID))}
}

// ID is the customer's id.
func (t *Tenant) ID() string { return t.id }

// Collection is one of CustomerCollections as this customer sees it. Any
// other name is a programming error.
func (t *Tenant) Collection(name string) *Coll {
	if !isCustomerCollection(name) {
		panic("store: " + name + " is not a customer collection")
	}
	return &Coll{c: t.db.Collection(name), prefix: t.id + Sep}
}

func isCustomerCollection(name string) bool {
	for _, n := range CustomerCollections {
		if n == name {
			return true
		}
	}
	return false
}

// DeleteAll deletes every document of the customer from every customer
// collection, one range each, and returns how many went. Other customers'
// documents are never touched; the cost is what the customer holds.
func (t *Tenant) DeleteAll(ctx context.Context) (int64, error) {
	var n int64
	for _, name := range CustomerCollections {
		d, err := t.Collection(name).DeleteRange(ctx, Range{})
		n += d
		if err != nil {
			return n, fmt.Errorf("delete %s of the customer: %w", name, err)
		}
	}
	return n, nil
}

// CountAll counts the customer's documents in every customer collection.
func (t *Tenant) CountAll(ctx context.Context) (int64, error) {
	var n int64
	for _, name := range CustomerCollections {
		c, err := t.Collection(name).Count(ctx, Range{})
		if err != nil {
			return n, fmt.Errorf("count %s of the customer: %w", name, err)
		}
		n += c
	}
	return n, nil
}

// cellName is the database holding a customer's documents. On MongoDB it
// is one database for all. The embedded engine keeps one SQLite file per
// database, and SQLite has one writer per file, so there the customers are
// spread over a fixed number of cells chosen from the customer id: the
// number of files stays the same whatever the number of customers.
func (db *DB) cellName(customerID string) string {
	if db.names.Cells <= 1 {
		return db.names.Data
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(customerID))
	return db.names.Data + "_" + strconv.Itoa(int(h.Sum32()%uint32(db.names.Cells)))
}

// cellNames are every database that holds customer data.
func (db *DB) cellNames() []string {
	if db.names.Cells <= 1 {
		return []string{db.names.Data}
	}
	out := make([]string, db.names.Cells)
	for i := range out {
		out[i] = db.names.Data + "_" + strconv.Itoa(i)
	}
	return out
}

// CountCustomerData counts a customer's documents (every customer
// collection, one range each).
func (db *DB) CountCustomerData(ctx context.Context, customerID string) (int64, error) {
	return db.Tenant(customerID).CountAll(ctx)
}

// DeleteCustomerData deletes a customer's documents, one range per
// customer collection. Deleting what is gone already succeeds, so a retried
// shred is safe.
func (db *DB) DeleteCustomerData(ctx context.Context, customerID string) (int64, error) {
	return db.Tenant(customerID).DeleteAll(ctx)
}

// DataDatabase is the database that holds one customer's range. Domain code
// never uses it (it goes through Tenant); migrate and the benchmarks'
// bare baselines do.
func (db *DB) DataDatabase(customerID string) *mongo.Database {
	return db.Client.Database(db.cellName(customerID))
}
