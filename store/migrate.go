package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Rekey maps a document of the first layout to the one this layout stores
// (logical _id), for a collection whose key changed (the timeline's). Nil
// for a collection copied as it is.
type Rekey func(old bson.Raw) (bson.Raw, error)

// MovedCustomer is what MoveLegacyCustomer did for one customer.
type MovedCustomer struct {
	CustomerID  string `json:"customerId"`
	Database    string `json:"database"`
	Collections int    `json:"collections"`
	Documents   int64  `json:"documents"`
	Copied      int64  `json:"copied"` // documents this run wrote (a resumed move copies fewer)
}

// MoveLegacyCustomer moves one customer database of the first layout into
// the shared collections, keeping every document as it was (ids, versions,
// sealed values: the prefix is storage only, and sealed values are bound to
// the logical id), then checks the copy and drops the old database. It is
// idempotent: a document copied by an earlier run that stopped half-way is
// found (a duplicate _id) and compared, never written twice; the old
// database goes only once every one of its documents is in the new range.
//
// moved, if set, runs once the copy is complete and before the old
// database goes (the index entries of the copy are written there), so a run
// killed in between does it again.
func (db *DB) MoveLegacyCustomer(ctx context.Context, customerID, database string, rekey map[string]Rekey, moved func(context.Context, *Tenant) error) (MovedCustomer, error) {
	res := MovedCustomer{CustomerID: customerID, Database: database}
	old := db.Client.Database(database)
	names, err := old.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return res, fmt.Errorf("list collections of %s: %w", database, err)
	}
	slices.Sort(names)
	t := db.Tenant(customerID)
	for _, name := range names {
		if !isCustomerCollection(name) {
			return res, fmt.Errorf("%s holds collection %q, which this release does not know: nothing was dropped", database, name)
		}
		n, copied, err := moveCollection(ctx, old.Collection(name), t.Collection(name), rekey[name])
		res.Documents += n
		res.Copied += copied
		if err != nil {
			return res, fmt.Errorf("move %s.%s: %w", database, name, err)
		}
		res.Collections++
	}
	if moved != nil {
		if err := moved(ctx, t); err != nil {
			return res, fmt.Errorf("after moving %s: %w", database, err)
		}
	}
	if err := old.Drop(ctx); err != nil {
		return res, fmt.Errorf("drop %s after its copy: %w", database, err)
	}
	return res, nil
}

// moveCollection copies every document of from into to, in batches, and
// verifies each against what is stored under its id.
func moveCollection(ctx context.Context, from *mongo.Collection, to *Coll, rekey Rekey) (n, copied int64, err error) {
	cur, err := from.Find(ctx, bson.D{})
	if err != nil {
		return 0, 0, err
	}
	defer cur.Close(ctx)
	var batch []bson.Raw
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		c, err := copyBatch(ctx, to, batch)
		copied += c
		batch = batch[:0]
		return err
	}
	for cur.Next(ctx) {
		doc := bson.Raw(slices.Clone(cur.Current))
		if rekey != nil {
			if doc, err = rekey(doc); err != nil {
				return n, copied, err
			}
		}
		batch = append(batch, doc)
		n++
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return n, copied, err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return n, copied, err
	}
	if err := flush(); err != nil {
		return n, copied, err
	}
	// Every document of the old collection is in the new range: count both.
	want, err := from.CountDocuments(ctx, bson.D{})
	if err != nil {
		return n, copied, err
	}
	got, err := to.Count(ctx, Range{})
	if err != nil {
		return n, copied, err
	}
	if got < want {
		return n, copied, fmt.Errorf("the copy holds %d of %d documents", got, want)
	}
	return n, copied, nil
}

// copyBatch inserts docs; one that is there already (an earlier run) must
// be byte-for-byte the same.
func copyBatch(ctx context.Context, to *Coll, docs []bson.Raw) (int64, error) {
	in := make([]any, len(docs))
	for i, d := range docs {
		in[i] = d
	}
	err := to.InsertMany(ctx, in)
	if err == nil {
		return int64(len(docs)), nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return 0, err
	}
	copied := int64(len(docs))
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return 0, we
		}
		copied--
		d := docs[we.Index]
		id, ok := d.Lookup("_id").StringValueOK()
		if !ok {
			return 0, errors.New("a customer document without a string _id")
		}
		have, err := to.FindID(ctx, id).Raw()
		if err != nil {
			return 0, err
		}
		if !sameDocument(have, d) {
			return 0, fmt.Errorf("document %q differs from the one already moved", id)
		}
	}
	return copied, nil
}

// sameDocument compares two documents field by field (the engine may
// return the fields of a document in another order than they were
// written, with _id first).
func sameDocument(a, b bson.Raw) bool {
	ea, err1 := a.Elements()
	eb, err2 := b.Elements()
	if err1 != nil || err2 != nil || len(ea) != len(eb) {
		return false
	}
	for _, e := range ea {
		v, err := b.LookupErr(e.Key())
		if err != nil || v.Type != e.Value().Type || !bytes.Equal(v.Value, e.Value().Value) {
			return false
		}
	}
	return true
}

// FinishMigration records the shared layout once no customer database of
// the first layout is left.
func (db *DB) FinishMigration(ctx context.Context) error {
	legacy, err := db.LegacyDatabases(ctx)
	if err != nil {
		return err
	}
	if len(legacy) > 0 {
		return fmt.Errorf("%d customer databases of the first layout are left", len(legacy))
	}
	v, err := db.LayoutVersion(ctx)
	if err != nil {
		return err
	}
	if v >= LayoutShared {
		return nil
	}
	return db.recordLayout(ctx, LayoutShared, "shared-collections")
}
