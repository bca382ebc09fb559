package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Coll is one collection as one owner sees it: every _id it reads or writes
// is the owner's prefix followed by the logical id, and every read is an
// exact _id or an _id range inside the owner's prefix. Callers see logical
// ids only: the prefix is added on the way in and taken off on the way out,
// so the documents they seal and read are the same in every layout.
//
// A Coll offers no way to pass a filter of the caller's own to the
// collection: outside this package nothing can read, change or delete a
// document of a shared collection but by an id or a range the Coll builds.
// A control collection (no prefix) is a Coll too, so the primitives of this
// package serve both.
type Coll struct {
	c      *mongo.Collection
	prefix string // "" for a control collection
}

// Plain wraps a control collection: ids are stored as they are.
func Plain(c *mongo.Collection) *Coll { return &Coll{c: c} }

// Sub is c narrowed to the ids that start with prefix: its ids, ranges
// and results are those of c with prefix taken off. A control collection
// shared by owners (a partner's webhook endpoints, say) is one Sub per
// owner.
func (c *Coll) Sub(prefix string) *Coll { return &Coll{c: c.c, prefix: c.prefix + prefix} }

// Name is the collection's (logical) name.
func (c *Coll) Name() string { return c.c.Name() }

func (c *Coll) key(id string) string { return c.prefix + id }

func (c *Coll) idFilter(id string) bson.D { return bson.D{{Key: "_id", Value: c.key(id)}} }

// Result is the answer of FindID.
type Result struct {
	raw bson.Raw
	err error
}

// Err is mongo.ErrNoDocuments when there is no such document.
func (r Result) Err() error { return r.err }

// Raw is the stored document with its logical _id.
func (r Result) Raw() (bson.Raw, error) { return r.raw, r.err }

// Decode unmarshals the document (with its logical _id) into out.
func (r Result) Decode(out any) error {
	if r.err != nil {
		return r.err
	}
	return bson.Unmarshal(r.raw, out)
}

// FindID reads the document id.
func (c *Coll) FindID(ctx context.Context, id string) Result {
	raw, err := c.c.FindOne(ctx, c.idFilter(id)).Raw()
	if err != nil {
		return Result{err: err}
	}
	raw, err = c.out(raw)
	return Result{raw: raw, err: err}
}

// InsertOne inserts doc (whose _id is logical). A taken _id is a
// duplicate-key error (mongo.IsDuplicateKeyError).
func (c *Coll) InsertOne(ctx context.Context, doc any) error {
	in, err := c.in(doc)
	if err != nil {
		return err
	}
	_, err = c.c.InsertOne(ctx, in)
	return err
}

// InsertMany inserts docs; unordered, every one is tried and a
// mongo.BulkWriteException names the refused ones by index.
func (c *Coll) InsertMany(ctx context.Context, docs []any) error {
	ins := make([]any, len(docs))
	for i, d := range docs {
		in, err := c.in(d)
		if err != nil {
			return err
		}
		ins[i] = in
	}
	_, err := c.c.InsertMany(ctx, ins, options.InsertMany().SetOrdered(false))
	return err
}

// ReplaceID replaces the document id with doc; matched is false when there
// was none (nothing is written then).
func (c *Coll) ReplaceID(ctx context.Context, id string, doc any) (matched bool, err error) {
	in, err := c.in(doc)
	if err != nil {
		return false, err
	}
	res, err := c.c.ReplaceOne(ctx, c.idFilter(id), in)
	if err != nil {
		return false, err
	}
	return res.MatchedCount > 0, nil
}

// ReplaceMany replaces each document ids[i] with docs[i] in one unordered
// bulk write and returns how many existed.
func (c *Coll) ReplaceMany(ctx context.Context, ids []string, docs []any) (matched int64, err error) {
	models := make([]mongo.WriteModel, len(ids))
	for i, id := range ids {
		in, err := c.in(docs[i])
		if err != nil {
			return 0, err
		}
		models[i] = mongo.NewReplaceOneModel().SetFilter(c.idFilter(id)).SetReplacement(in)
	}
	res, err := c.c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err != nil {
		return 0, err
	}
	return res.MatchedCount, nil
}

// DeleteID deletes the document id; deleted is false when there was none.
func (c *Coll) DeleteID(ctx context.Context, id string) (deleted bool, err error) {
	res, err := c.c.DeleteOne(ctx, c.idFilter(id))
	if err != nil {
		return false, err
	}
	return res.DeletedCount > 0, nil
}

// DeleteIDs deletes the documents ids (those that exist) and returns how
// many went.
func (c *Coll) DeleteIDs(ctx context.Context, ids []string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	for lo := 0; lo < len(ids); lo += maxIn {
		res, err := c.c.DeleteMany(ctx, c.inFilter(ids[lo:min(lo+maxIn, len(ids))]))
		if err != nil {
			return n, err
		}
		n += res.DeletedCount
	}
	return n, nil
}

// maxIn is the most ids one $in names: the engine serves an $in of up to
// 1,000 string _ids from its _id index (third_party/README.md).
const maxIn = 1000

func (c *Coll) inFilter(ids []string) bson.D {
	keys := make(bson.A, len(ids))
	for i, id := range ids {
		keys[i] = c.key(id)
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}
}

// FindIDs reads the documents ids (those that exist), in no order, with
// one query per 1,000.
func (c *Coll) FindIDs(ctx context.Context, ids []string) ([]bson.Raw, error) {
	var out []bson.Raw
	for lo := 0; lo < len(ids); lo += maxIn {
		cur, err := c.c.Find(ctx, c.inFilter(ids[lo:min(lo+maxIn, len(ids))]))
		if err != nil {
			return nil, err
		}
		k := &Cursor{cur: cur, coll: c}
		for k.Next(ctx) {
			out = append(out, slices.Clone(k.Current()))
		}
		err = k.Err()
		k.Close(ctx)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Range selects logical ids: From <= id < To (an empty To: no upper bound
// but the owner's prefix), in _id order (Desc: newest first for
// time-ordered ids), at most Limit documents (0: all). After, when set,
// starts strictly past that id in the direction of the range (a cursor).
// Where, when set, keeps only the documents of the range that also match
// it: it narrows a range, it never widens one (the engine filters it after
// the range, so it costs what the range holds, not what the collection
// does). It may not name _id, nor use a top-level operator ($or, ...).
type Range struct {
	From, To string
	After    string
	Desc     bool
	Limit    int
	Where    bson.D
}

// Prefix is the range of the logical ids that start with p.
func Prefix(p string) Range { return Range{From: p, To: PrefixEnd(p)} }

// PrefixEnd is the least string above every string that starts with p
// ("" when there is none: p is empty or all 0xff bytes).
func PrefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return ""
}

// errWhereID: a range is its own condition on _id.
var errWhereID = errors.New("store: a range's Where may not name _id")

func (c *Coll) rangeFilter(r Range) (bson.D, error) {
	for _, e := range r.Where {
		if e.Key == "_id" || strings.HasPrefix(e.Key, "$") {
			return nil, errWhereID
		}
	}
	lo, hi := c.key(r.From), ""
	if r.To != "" {
		hi = c.key(r.To)
	} else if c.prefix != "" {
		hi = PrefixEnd(c.prefix)
	}
	lower := "$gte"
	if r.After != "" {
		// Strictly past the cursor: $gt and $lt (a bound in the alphabet
		// the ids are written in keeps the engine on its index order).
		if a := c.key(r.After); r.Desc && (hi == "" || a < hi) {
			hi = a
		} else if !r.Desc && a >= lo {
			lo, lower = a, "$gt"
		}
	}
	cond := bson.D{{Key: lower, Value: lo}}
	if hi != "" {
		cond = append(cond, bson.E{Key: "$lt", Value: hi})
	}
	f := bson.D{{Key: "_id", Value: cond}}
	if len(r.Where) > 0 {
		f = append(f, r.Where...)
	}
	return f, nil
}

// Find reads a range; the cursor yields documents with their logical _id.
func (c *Coll) Find(ctx context.Context, r Range) (*Cursor, error) {
	dir := 1
	if r.Desc {
		dir = -1
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: dir}})
	if r.Limit > 0 {
		opts.SetLimit(int64(r.Limit))
	}
	f, err := c.rangeFilter(r)
	if err != nil {
		return nil, err
	}
	cur, err := c.c.Find(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	return &Cursor{cur: cur, coll: c}, nil
}

// All reads a whole range into out (a pointer to a slice).
func All[T any](ctx context.Context, c *Coll, r Range) ([]T, error) {
	cur, err := c.Find(ctx, r)
	if err != nil {
		return nil, err
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRange deletes every document of a range (Limit and Where apply)
// and returns how many went.
func (c *Coll) DeleteRange(ctx context.Context, r Range) (int64, error) {
	if r.Limit > 0 {
		return 0, errors.New("store: DeleteRange takes no limit")
	}
	f, err := c.rangeFilter(r)
	if err != nil {
		return 0, err
	}
	res, err := c.c.DeleteMany(ctx, f)
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}

// Count counts the documents of a range.
func (c *Coll) Count(ctx context.Context, r Range) (int64, error) {
	f, err := c.rangeFilter(r)
	if err != nil {
		return 0, err
	}
	return c.c.CountDocuments(ctx, f)
}

// Cursor iterates a range.
type Cursor struct {
	cur  *mongo.Cursor
	coll *Coll
	raw  bson.Raw
	err  error
}

// Next moves to the next document.
func (k *Cursor) Next(ctx context.Context) bool {
	if k.err != nil || !k.cur.Next(ctx) {
		return false
	}
	k.raw, k.err = k.coll.out(k.cur.Current)
	return k.err == nil
}

// Decode unmarshals the current document into out.
func (k *Cursor) Decode(out any) error { return bson.Unmarshal(k.raw, out) }

// Current is the current document, with its logical _id.
func (k *Cursor) Current() bson.Raw { return k.raw }

// Err is the iteration's error.
func (k *Cursor) Err() error {
	if k.err != nil {
		return k.err
	}
	return k.cur.Err()
}

// Close ends the iteration.
func (k *Cursor) Close(ctx context.Context) error { return k.cur.Close(ctx) }

// All reads what is left into out (a pointer to a slice) and closes.
func (k *Cursor) All(ctx context.Context, out any) error {
	defer k.Close(ctx)
	if k.coll.prefix == "" {
		return k.cur.All(ctx, out)
	}
	var docs []bson.Raw
	for k.Next(ctx) {
		docs = append(docs, k.raw)
	}
	if err := k.Err(); err != nil {
		return err
	}
	// One round trip through an array keeps All's decoding rules (slices of
	// any element type) without reflection here.
	arr := bsoncore.NewArrayBuilder()
	for _, d := range docs {
		arr.AppendDocument(d)
	}
	wrapped := bsoncore.NewDocumentBuilder().AppendArray("a", arr.Build()).Build()
	var holder struct {
		A bson.RawValue `bson:"a"`
	}
	if err := bson.Unmarshal(wrapped, &holder); err != nil {
		return err
	}
	return holder.A.Unmarshal(out)
}

// in marshals doc and prefixes its _id.
func (c *Coll) in(doc any) (any, error) {
	if c.prefix == "" {
		return doc, nil
	}
	raw, err := bson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return rewriteID(raw, func(id string) (string, error) { return c.prefix + id, nil })
}

// out takes the prefix off a stored document's _id.
func (c *Coll) out(raw bson.Raw) (bson.Raw, error) {
	if c.prefix == "" {
		return raw, nil
	}
	return rewriteID(raw, func(id string) (string, error) {
		rest, ok := strings.CutPrefix(id, c.prefix)
		if !ok {
			return "", fmt.Errorf("store: %s holds a document outside its owner's range", c.c.Name())
		}
		return rest, nil
	})
}

// rewriteID copies a document with its string _id mapped by f.
func rewriteID(raw bson.Raw, f func(string) (string, error)) (bson.Raw, error) {
	els, err := bsoncore.Document(raw).Elements()
	if err != nil {
		return nil, err
	}
	idx, dst := bsoncore.AppendDocumentStart(make([]byte, 0, len(raw)+40))
	seen := false
	for _, el := range els {
		if el.Key() != "_id" {
			dst = append(dst, el...)
			continue
		}
		s, ok := el.Value().StringValueOK()
		if !ok {
			return nil, errors.New("store: a customer document's _id must be a string")
		}
		id, err := f(s)
		if err != nil {
			return nil, err
		}
		dst = bsoncore.AppendStringElement(dst, "_id", id)
		seen = true
	}
	if !seen {
		return nil, errors.New("store: a customer document needs an _id")
	}
	dst, err = bsoncore.AppendDocumentEnd(dst, idx)
	return bson.Raw(dst), err
}
