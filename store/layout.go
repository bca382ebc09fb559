package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Layout versions. 1 kept a database per customer; 2 keeps every customer
// in one set of collections (CustomerCollections), each document's _id
// prefixed with its customer's id.
const (
	LayoutPerCustomer = 1
	LayoutShared      = 2
	// Layout is the version this release reads and writes.
	Layout = LayoutShared
)

// ErrOldLayout: the data was written by an older release; migrate first.
var ErrOldLayout = errors.New("the data is in an older storage layout (a database per customer): stop every server and run `switchboard migrate`")

// metaColl holds the layout record in the control database.
const metaColl = "meta"

// layoutDoc records the layout version and the migration steps done, each
// once.
type layoutDoc struct {
	ID      string     `bson:"_id"` // "layout"
	Version int        `bson:"version"`
	Steps   []stepDone `bson:"steps"`
}

type stepDone struct {
	Name string    `bson:"name"`
	At   time.Time `bson:"at"`
}

// LayoutVersion reads the data's layout version. A deployment with no
// record is new (Layout) unless it holds a customer database of the first
// layout (LayoutPerCustomer).
func (db *DB) LayoutVersion(ctx context.Context) (int, error) {
	d, err := db.layout(ctx)
	if err != nil {
		return 0, err
	}
	return d.Version, nil
}

func (db *DB) layout(ctx context.Context) (*layoutDoc, error) {
	var d layoutDoc
	err := db.Control.Collection(metaColl).FindOne(ctx, bson.D{{Key: "_id", Value: "layout"}}).Decode(&d)
	if err == nil {
		return &d, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("read the storage layout: %w", err)
	}
	legacy, err := db.LegacyDatabases(ctx)
	if err != nil {
		return nil, err
	}
	if len(legacy) > 0 {
		return &layoutDoc{ID: "layout", Version: LayoutPerCustomer}, nil
	}
	// Customers but no record: written by a release before the record
	// (their index entries are missing).
	switch err := db.Control.Collection("customers").FindOne(ctx, bson.D{}).Err(); {
	case err == nil:
		return &layoutDoc{ID: "layout", Version: LayoutPerCustomer}, nil
	case !errors.Is(err, mongo.ErrNoDocuments):
		return nil, fmt.Errorf("read the storage layout: %w", err)
	}
	// A new deployment (or one of the first layout with no customer data):
	// it starts in this layout. Racing starters write the same record.
	d = layoutDoc{ID: "layout", Version: Layout, Steps: []stepDone{}}
	if _, err := db.Control.Collection(metaColl).InsertOne(ctx, d); err != nil && !mongo.IsDuplicateKeyError(err) {
		return nil, fmt.Errorf("record the storage layout: %w", err)
	}
	return &d, nil
}

// CheckLayout refuses data of an older layout (ErrOldLayout).
func (db *DB) CheckLayout(ctx context.Context) error {
	v, err := db.LayoutVersion(ctx)
	if err != nil {
		return err
	}
	if v < Layout {
		return ErrOldLayout
	}
	if v > Layout {
		return fmt.Errorf("the data is in storage layout %d, newer than this release's %d: run a newer switchboard", v, Layout)
	}
	return nil
}

// StepDone reports whether the migration step name was recorded.
func (db *DB) StepDone(ctx context.Context, name string) (bool, error) {
	d, err := db.layout(ctx)
	if err != nil {
		return false, err
	}
	for _, s := range d.Steps {
		if s.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// recordLayout writes the layout record (only migrate, with every server
// stopped, writes it after the first start).
func (db *DB) recordLayout(ctx context.Context, version int, step string) error {
	d, err := db.layout(ctx)
	if err != nil {
		return err
	}
	d.Version = version
	if step != "" {
		d.Steps = append(d.Steps, stepDone{Name: step, At: time.Now().UTC().Truncate(time.Millisecond)})
	}
	_, err = db.Control.Collection(metaColl).ReplaceOne(ctx, bson.D{{Key: "_id", Value: "layout"}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("record the storage layout: %w", err)
	}
	return nil
}

// RecordStep records that the migration step name is done.
func (db *DB) RecordStep(ctx context.Context, name string) error {
	v, err := db.LayoutVersion(ctx)
	if err != nil {
		return err
	}
	return db.recordLayout(ctx, v, name)
}

// LegacyDatabases are the customer databases of the first layout, by
// customer id.
func (db *DB) LegacyDatabases(ctx context.Context) (map[string]string, error) {
	names, err := db.Client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	out := map[string]string{}
	for _, n := range names {
		hexID, ok := strings.CutPrefix(n, db.names.LegacyPrefix)
		if !ok || len(hexID) != 32 {
			continue
		}
		out[hexID[:8]+"-"+hexID[8:12]+"-"+hexID[12:16]+"-"+hexID[16:20]+"-"+hexID[20:]] = n
	}
	return out, nil
}

// ServedByAnother reports whether this process attached to an embedded
// engine that another process (a running server) runs.
func (db *DB) ServedByAnother() bool { return db.engine != nil && !db.engine.owner }
