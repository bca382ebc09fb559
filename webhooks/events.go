package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard"
	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
)

// Pending is an event a change is about to cause.
type Pending struct {
	Type string
	// CustomerID is the customer the event is about (a partner's events
	// too).
	CustomerID string
	// Data is the resource as the API shows it.
	Data any
	// Subject, if set, is the id of the resource Data shows (a message, a
	// contact): erasing it (Forget) takes back its events not delivered.
	Subject string
}

// ClaimRef names the claim of the change an event waits for: in the
// customer's data (a tenant owner's change), or in the control database.
// Not Control, the claim is in the data of the event's customer (a
// partner's event about a customer's number, too). Gone means the change is
// the document's deletion: it happened once ClaimID is absent.
//
// Doc and DocID, if set, name the changed document: a claim that won may
// still be taken back when its document cannot be written, so the change
// happened only if the document is there too.
type ClaimRef struct {
	Control         bool   `bson:"control,omitempty"`
	Coll            string `bson:"coll"`
	ClaimID, Writer string
	Gone            bool   `bson:"gone,omitempty"`
	Doc             string `bson:"doc,omitempty"`
	DocID           string `bson:"docId,omitempty"`
}

// Ref is the ClaimRef of a change a store hold saw (a deletion, whose
// document is gone, is judged by its claim alone).
func Ref[T any](x store.Held[T]) ClaimRef {
	r := ClaimRef{Coll: x.Coll, ClaimID: x.ClaimID, Writer: x.Writer}
	if x.New != nil {
		r.Doc, r.DocID = x.Docs, x.DocID
	}
	return r
}

// Change is one change's events, as a domain's store hold hands them over.
type Change struct {
	Claim  ClaimRef
	Events []Pending
}

// eventDoc is an event held until its change is found to have won, then
// fanned out to the endpoints chosen when it was written.
type eventDoc struct {
	ID        string    `bson:"_id"` // "<subject>/<event id>", or the event id
	EventID   string    `bson:"eventId"`
	Subject   string    `bson:"subject,omitempty"`
	Type      string    `bson:"type"`
	CreatedAt time.Time `bson:"createdAt"`
	Body      []byte    `bson:"body"` // sealed for a tenant owner
	Endpoints []string  `bson:"endpoints"`
	Claim     ClaimRef  `bson:"claim"`
	Customer  string    `bson:"customer"` // whose data holds the claim
}

// body is what a delivery posts.
type body struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	CreatedAt  string  `json:"createdAt"`
	CustomerID *string `json:"customerId"` // null: a partner's test event
	Data       any     `json:"data"`
}

// eventID is the same for every retry of one change's event and differs
// between racing writers of one version (only the winner's goes out).
func eventID(ref ClaimRef, typ string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%t\x00%s\x00%s\x00%s\x00%s", ref.Control, ref.Coll, ref.ClaimID, ref.Writer, typ)))
	return "evt_" + hex.EncodeToString(h[:16])
}

func bodyField(kind, id string) crypto.Field {
	return crypto.Field{Collection: "webhook_bodies", DocumentID: kind + "/" + id, Name: "body"}
}

// crypt seals (seal true) or opens a tenant owner's value b (a body, a URL)
// under the customer's key; a partner's hold no personal data and stay as
// they are.
func (s *Service) crypt(ctx context.Context, o Owner, f crypto.Field, b []byte, seal bool) ([]byte, error) {
	if o.Partner {
		return b, nil
	}
	c, err := s.cfg.Cipher(ctx, o.ID)
	if err != nil {
		return nil, err
	}
	if seal {
		return c.Seal(f, b)
	}
	return c.Open(f, b)
}

// Hold writes the events of changes about to be claimed, each to the
// owner's endpoints subscribed to its type now. It must run before the
// claims are inserted (store.Versioned.Hold); an owner with no endpoint
// costs one read of its (empty) endpoint list.
func (s *Service) Hold(ctx context.Context, o Owner, changes []Change) error {
	var eps []*endpointDoc
	read := false
	var evs []any
	var dues []any
	now := s.now()
	for _, ch := range changes {
		for _, p := range ch.Events {
			if !read {
				var err error
				if eps, err = s.liveEndpoints(ctx, o); err != nil {
					return err
				}
				read = true
			}
			var to []string
			for _, e := range eps {
				if e.subscribed(o, p.Type) {
					to = append(to, e.ID)
				}
			}
			if len(to) == 0 {
				continue
			}
			id := eventID(ch.Claim, p.Type)
			raw, err := json.Marshal(body{ID: id, Type: p.Type, CreatedAt: switchboard.FormatTime(now), CustomerID: &p.CustomerID, Data: s.data(p.Data)})
			if err != nil {
				return fmt.Errorf("event body: %w", err)
			}
			key := id
			if p.Subject != "" {
				key = p.Subject + "/" + id
			}
			sealed, err := s.crypt(ctx, o, bodyField("e", key), raw, true)
			if err != nil {
				return err
			}
			due := dueKey(now, kindEvent, o, key)
			evs = append(evs, eventDoc{ID: key, EventID: id, Subject: p.Subject, Type: p.Type, CreatedAt: now, Body: sealed,
				Endpoints: to, Claim: ch.Claim, Customer: p.CustomerID})
			dues = append(dues, dueDoc{ID: due})
		}
	}
	if len(evs) == 0 {
		return nil
	}
	// The due entries first: an event written without its entry would
	// never be judged (an entry without its event is dropped).
	if err := insertAll(ctx, s.due(), dues); err != nil {
		return fmt.Errorf("hold events: %w", err)
	}
	if err := insertAll(ctx, s.colls(o).events, evs); err != nil {
		return fmt.Errorf("hold events: %w", err)
	}
	for _, d := range dues {
		s.poke(d.(dueDoc).ID)
	}
	return nil
}

// insertAll inserts docs; one already there (a retry) is not an error.
func insertAll(ctx context.Context, c *store.Coll, docs []any) error {
	err := c.InsertMany(ctx, docs)
	var bwe mongo.BulkWriteException
	if err == nil || !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return err
	}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we) {
			return err
		}
	}
	return nil
}

// liveEndpoints reads the owner's endpoints through their claims.
func (s *Service) liveEndpoints(ctx context.Context, o Owner) ([]*endpointDoc, error) {
	v := s.endpointsOf(o)
	docs, err := store.All[endpointDoc](ctx, v.Docs, store.Range{Limit: MaxEndpoints + 1})
	if err != nil {
		return nil, err
	}
	out := make([]*endpointDoc, 0, len(docs))
	for i := range docs {
		d := &docs[i]
		if len(d.URL) == 0 {
			continue // a deletion's remains
		}
		out = append(out, d)
	}
	return out, nil
}

// claimGrace is how long an event waits for its claim: the claim is
// inserted right after the event, so one missing past this never came.
const claimGrace = time.Minute

// fanOut judges a held event by its claim and, once its change has won,
// makes one delivery per endpoint. It reports whether the event is settled
// (fanned out, or dropped); false means look again shortly.
func (s *Service) fanOut(ctx context.Context, o Owner, id string, dueAt time.Time) (bool, error) {
	c := s.colls(o)
	var ev eventDoc
	if err := c.events.FindID(ctx, id).Decode(&ev); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			// Fanned out already, or the customer's data is gone; or, for
			// a young entry, the event is still on its way (its entry is
			// written first).
			return s.now().Sub(dueAt) >= claimGrace || s.shredded(ctx, o), nil
		}
		return false, err
	}
	claims := s.refColl(&ev, ev.Claim.Coll)
	writer, err := store.ClaimWriter(ctx, claims, ev.Claim.ClaimID)
	happened := err == nil && writer == ev.Claim.Writer
	if ev.Claim.Gone {
		happened = errors.Is(err, store.ErrNotFound)
	}
	if happened && ev.Claim.Doc != "" {
		switch _, derr := s.refColl(&ev, ev.Claim.Doc).FindID(ctx, ev.Claim.DocID).Raw(); {
		case errors.Is(derr, mongo.ErrNoDocuments):
			// Claimed, and its document not there: on its way, refused
			// (the claim then taken back), or deleted since; a later
			// version's claim says it was there.
			later, lerr := s.laterClaim(ctx, claims, ev.Claim)
			if lerr != nil {
				return false, lerr
			}
			if !later {
				happened, err = false, store.ErrNotFound
			}
		case derr != nil:
			return false, derr
		}
	}
	switch {
	case happened:
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return false, err
	case !ev.Claim.Gone && err == nil:
		return true, s.dropEvent(ctx, o, &ev) // another change won that version
	case s.now().Sub(ev.CreatedAt) < claimGrace:
		return false, nil // the change may still be on its way
	default:
		return true, s.dropEvent(ctx, o, &ev) // the change never happened
	}
	raw, err := s.crypt(ctx, o, bodyField("e", ev.ID), ev.Body, false)
	if err != nil {
		return false, err
	}
	for _, ep := range ev.Endpoints {
		if _, err := s.newDelivery(ctx, o, ep, ev.EventID, ev.Subject, ev.Type, ev.CreatedAt, raw); err != nil {
			return false, err
		}
	}
	return true, s.dropEvent(ctx, o, &ev)
}

// refColl is collection name where ev's claim lives: the control
// database's, or its customer's.
func (s *Service) refColl(ev *eventDoc, name string) *store.Coll {
	if ev.Claim.Control {
		return store.Plain(s.cfg.Control.Collection(name))
	}
	return s.cfg.Tenant(ev.Customer).Collection(name)
}

// laterClaim reports whether the version after ref's claim is claimed
// ("<doc>:<n+1>"): then ref's change was applied, whatever became of the
// document since.
func (s *Service) laterClaim(ctx context.Context, claims *store.Coll, ref ClaimRef) (bool, error) {
	rest, ok := strings.CutPrefix(ref.ClaimID, ref.DocID+":")
	v, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil {
		return false, nil
	}
	_, err = store.ClaimWriter(ctx, claims, store.ClaimID(ref.DocID, v+1))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// survivesErasure are the event types that carry nothing of what an
// erasure takes away (an id, an anonymized record): they still go out.
var survivesErasure = []string{"contact.deleted", "contact.anonymized"}

// Forget takes back the events about resource subject of owner o that are
// not delivered yet — held, pending or failed — when the resource is
// erased (a message redacted, a contact deleted or anonymized): their
// bodies hold what the erasure removes. Those that carry nothing of it
// (survivesErasure) stay. Forgetting again changes nothing.
func (s *Service) Forget(ctx context.Context, o Owner, subject string) error {
	if subject == "" {
		return nil
	}
	c := s.colls(o)
	evs, err := store.All[eventDoc](ctx, c.events, store.Prefix(subject+"/"))
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if !slices.Contains(survivesErasure, ev.Type) {
			if _, err := c.events.DeleteID(ctx, ev.ID); err != nil {
				return err
			}
		}
	}
	r := store.Prefix("r/" + subject + "/")
	r.Limit = 100
	for {
		docs, keys, err := s.deliveriesOf(o).Scan(ctx, r, nil)
		if err != nil {
			return err
		}
		for _, d := range docs {
			if d.Status != StatusDelivered && !slices.Contains(survivesErasure, d.EventType) {
				if err := s.purgeDelivery(ctx, o, d); err != nil {
					return err
				}
			}
		}
		if len(keys) < r.Limit {
			return nil
		}
		r.After = keys[len(keys)-1]
	}
}

// dropEvent deletes a settled event; its due entry goes when the worker
// settles the work (fanOut's answer).
func (s *Service) dropEvent(ctx context.Context, o Owner, ev *eventDoc) error {
	_, err := s.colls(o).events.DeleteID(ctx, ev.ID)
	return err
}
