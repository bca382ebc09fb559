package contacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/internal/seen"
	"github.com/switchboard/switchboard/store"

	"github.com/switchboard/switchboard"
)

// Service opens handles on customers' contacts.
type Service struct {
	// Cipher returns a customer's cipher, refusing shredded customers.
	Cipher func(ctx context.Context, customerID string) (*crypto.Cipher, error)
	// Database returns the handle of a customer's own database.
	Database func(customerID string) *mongo.Database
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	indexed sync.Map // customer id → struct{}: indexes ensured by this process
	flushed seen.Set // timeline items known to be in the timeline collection
}

// Handle is bound to one customer's database and key: every method is
// scoped to that customer.
type Handle struct {
	db      *mongo.Database
	cipher  *crypto.Cipher
	now     func() time.Time
	flushed *seen.Set
	docs    *store.Versioned[contactDoc, struct{}]
}

// Open returns the handle of one customer.
func (s *Service) Open(ctx context.Context, customerID string) (*Handle, error) {
	c, err := s.Cipher(ctx, customerID)
	if err != nil {
		return nil, err
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	db := s.Database(customerID)
	h := &Handle{db: db, cipher: c, now: now, flushed: &s.flushed, docs: &store.Versioned[contactDoc, struct{}]{
		Docs:    db.Collection("contacts"),
		Claims:  db.Collection("contact_claims"),
		Version: func(d *contactDoc) int64 { return d.Version },
		Now:     now,
	}}
	if _, done := s.indexed.Load(customerID); !done {
		if err := h.ensureIndexes(ctx); err != nil {
			return nil, err
		}
		s.indexed.Store(customerID, struct{}{})
	}
	return h, nil
}

// ensureIndexes creates the indexes of a customer's database (idempotent).
func (h *Handle) ensureIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		coll string
		keys bson.D
	}{
		{"contacts", bson.D{{Key: "channelIdx", Value: 1}}},
		{"timeline", bson.D{{Key: "contactId", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}},
	} {
		if _, err := h.db.Collection(ix.coll).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys}); err != nil {
			return fmt.Errorf("contacts indexes: %w", err)
		}
	}
	return nil
}

// Lookup kinds: the match keys, each unique within a customer.
const (
	KeyEmail      = "email"
	KeyPhone      = "phone"
	KeyCrmID      = "crmId"
	KeyExternalID = "externalId"
)

var lookupKinds = []string{KeyEmail, KeyPhone, KeyCrmID, KeyExternalID}

// Failure codes of upsert items.
const (
	CodeDuplicate = "duplicate"
	CodeNotFound  = "not_found"
	CodeConflict  = "conflict"
)

var errConflict = errors.New("a unique value belongs to another contact")

// personal is everything about a person: stored only sealed.
type personal struct {
	ExternalID       *string     `json:"externalId,omitempty"`
	CrmID            *string     `json:"crmId,omitempty"`
	Email            *string     `json:"email,omitempty"`
	Phone            *string     `json:"phone,omitempty"`
	FirstName        *string     `json:"firstName,omitempty"`
	LastName         *string     `json:"lastName,omitempty"`
	DateOfBirth      *string     `json:"dateOfBirth,omitempty"`
	Gender           *string     `json:"gender,omitempty"`
	Channels         []Channel   `json:"channels,omitempty"`
	CustomAttributes []Attribute `json:"customAttributes,omitempty"`
	Consents         []Consent   `json:"consents,omitempty"`
}

func (p *personal) key(kind string) *string {
	switch kind {
	case KeyEmail:
		return p.Email
	case KeyPhone:
		return p.Phone
	case KeyCrmID:
		return p.CrmID
	case KeyExternalID:
		return p.ExternalID
	}
	return nil
}

type contactDoc struct {
	ID         string            `bson:"_id"`
	Version    int64             `bson:"version"`
	Sealed     []byte            `bson:"sealed"`
	Country    *string           `bson:"country,omitempty"`
	Anonymized bool              `bson:"anonymized"`
	CreatedAt  time.Time         `bson:"createdAt"`
	UpdatedAt  time.Time         `bson:"updatedAt"`
	Idx        map[string][]byte `bson:"idx,omitempty"`
	ChannelIdx [][]byte          `bson:"channelIdx,omitempty"`
	// Pending holds the timeline items of the latest change until they are
	// copied to the timeline collection (every load copies them first).
	Pending []timelineDoc `bson:"pending,omitempty"`
}

type timelineDoc struct {
	ID        string    `bson:"_id"`
	ContactID string    `bson:"contactId"`
	Type      string    `bson:"type"`
	At        time.Time `bson:"at"`
	Sealed    []byte    `bson:"sealed"`
}

type timelinePayload struct {
	EventType   *string        `json:"eventType,omitempty"`
	Message     *string        `json:"message,omitempty"`
	SourceURL   *string        `json:"sourceUrl,omitempty"`
	InitiatedBy *string        `json:"initiatedBy,omitempty"`
	Data        map[string]any `json:"data,omitempty"`
}

func (h *Handle) contacts() *mongo.Collection { return h.db.Collection("contacts") }

// contactDocs is the versioned contacts collection: every change of a
// contact is a claim of "<id>:<version>" in contact_claims (store.Versioned).
func (h *Handle) contactDocs() *store.Versioned[contactDoc, struct{}] { return h.docs }
func (h *Handle) lookups() *mongo.Collection                          { return h.db.Collection("lookups") }
func (h *Handle) timeline() *mongo.Collection                         { return h.db.Collection("timeline") }

func (h *Handle) nowMs() time.Time { return h.now().UTC().Truncate(time.Millisecond) }

func personalField(id string) crypto.Field {
	return crypto.Field{Collection: "contacts", DocumentID: id, Name: "personal"}
}

func timelineField(id string) crypto.Field {
	return crypto.Field{Collection: "timeline", DocumentID: id, Name: "payload"}
}

func (h *Handle) index(kind, value string) []byte { return h.cipher.BlindIndex(kind, value) }

func channelKey(c Channel) string { return c.Type + ":" + c.Address }

// load reads a contact and first copies its pending timeline items.
func (h *Handle) load(ctx context.Context, id string) (*contactDoc, *personal, error) {
	doc, err := h.docs.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load contact: %w", err)
	}
	return h.opened(ctx, doc)
}

// opened copies a loaded contact's pending timeline items and opens it.
func (h *Handle) opened(ctx context.Context, doc *contactDoc) (*contactDoc, *personal, error) {
	if err := h.flush(ctx, doc.Pending); err != nil {
		return nil, nil, err
	}
	p, err := h.open(doc)
	if err != nil {
		return nil, nil, err
	}
	return doc, p, nil
}

func (h *Handle) open(doc *contactDoc) (*personal, error) {
	b, err := h.cipher.Open(personalField(doc.ID), doc.Sealed)
	if err != nil {
		return nil, fmt.Errorf("open contact: %w", err)
	}
	var p personal
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("open contact: %w", err)
	}
	return &p, nil
}

// flush copies pending timeline items; copying one twice is harmless, and
// an item this process already copied is not tried again.
func (h *Handle) flush(ctx context.Context, items []timelineDoc) error {
	for _, it := range items {
		if h.flushed.Has(it.ID) {
			continue
		}
		if _, err := h.timeline().InsertOne(ctx, it); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("record timeline: %w", err)
		}
		h.flushed.Add(it.ID)
	}
	return nil
}

func (h *Handle) newItem(contactID, typ string, at time.Time, p timelinePayload) (timelineDoc, error) {
	id := uuid.Must(uuid.NewV7()).String()
	b, err := json.Marshal(p)
	if err != nil {
		return timelineDoc{}, err
	}
	sealed, err := h.cipher.Seal(timelineField(id), b)
	if err != nil {
		return timelineDoc{}, err
	}
	return timelineDoc{ID: id, ContactID: contactID, Type: typ, At: at, Sealed: sealed}, nil
}

// build makes the stored form of p as the next version of old (nil: a new
// contact with id): sealed, with its blind indexes and pending items.
func (h *Handle) build(id string, old *contactDoc, p *personal, country *string, anonymized bool, items []timelineDoc) (*contactDoc, error) {
	now := h.nowMs()
	doc := &contactDoc{ID: id, Version: 1, Country: country, Anonymized: anonymized, CreatedAt: now, UpdatedAt: now, Idx: map[string][]byte{}, Pending: items}
	if old != nil {
		doc.Version, doc.CreatedAt = old.Version+1, old.CreatedAt
	}
	for _, k := range lookupKinds {
		if v := p.key(k); v != nil {
			doc.Idx[k] = h.index(k, *v)
		}
	}
	seen := map[string]bool{}
	for _, c := range p.Channels {
		if k := channelKey(c); !seen[k] {
			seen[k] = true
			doc.ChannelIdx = append(doc.ChannelIdx, h.index("channel", k))
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if doc.Sealed, err = h.cipher.Seal(personalField(id), b); err != nil {
		return nil, err
	}
	return doc, nil
}

// merge applies an input to a stored person (nil for a new one) and tells
// which fields changed and which consents.
func merge(old *personal, in Input, now time.Time) (*personal, []string, []Consent) {
	p := &personal{}
	if old != nil {
		cp := *old
		p = &cp
	}
	var changed []string
	set := func(dst **string, f Field[string], name string) {
		if !f.Set {
			return
		}
		var v *string
		if !f.Null {
			s := f.Value
			v = &s
		}
		if (*dst == nil) != (v == nil) || (v != nil && **dst != *v) {
			changed = append(changed, name)
		}
		*dst = v
	}
	set(&p.ExternalID, in.ExternalID, "externalId")
	set(&p.CrmID, in.CrmID, "crmId")
	set(&p.Email, in.Email, "email")
	set(&p.Phone, in.Phone, "phone")
	set(&p.FirstName, in.FirstName, "firstName")
	set(&p.LastName, in.LastName, "lastName")
	set(&p.DateOfBirth, in.DateOfBirth, "dateOfBirth")
	set(&p.Gender, in.Gender, "gender")
	if in.Channels.Set {
		if !slices.Equal(p.Channels, in.Channels.Value) {
			changed = append(changed, "channels")
		}
		p.Channels = slices.Clone(in.Channels.Value)
	}
	if in.CustomAttributes.Set {
		if !slices.Equal(p.CustomAttributes, in.CustomAttributes.Value) {
			changed = append(changed, "customAttributes")
		}
		p.CustomAttributes = slices.Clone(in.CustomAttributes.Value)
	}
	var consentChanges []Consent
	if in.Consents.Set {
		cons := slices.Clone(p.Consents)
		if in.Consents.Null {
			cons = nil
			changed = append(changed, "consents")
		}
		for _, c := range in.Consents.Value {
			source := c.Source
			if source == "" {
				source = "api"
			}
			i := slices.IndexFunc(cons, func(x Consent) bool { return x.Topic == c.Topic })
			if i >= 0 && cons[i].Value == c.Value && cons[i].Source == source {
				continue
			}
			nc := Consent{Topic: c.Topic, Value: c.Value, UpdatedAt: now, Source: source}
			if i >= 0 {
				cons[i] = nc
			} else {
				cons = append(cons, nc)
			}
			consentChanges = append(consentChanges, nc)
		}
		p.Consents = cons
	}
	return p, changed, consentChanges
}

func countryOf(old *contactDoc, in Input) *string {
	if in.Country.Set {
		if in.Country.Null {
			return nil
		}
		c := in.Country.Value
		return &c
	}
	if old != nil {
		return old.Country
	}
	return nil
}

// items builds the timeline items of a change.
func (h *Handle) items(id, typ string, changed []string, consents []Consent, now time.Time) ([]timelineDoc, error) {
	var out []timelineDoc
	if typ != "" {
		data := map[string]any{}
		if changed != nil {
			data["fields"] = changed
		}
		it, err := h.newItem(id, typ, now, timelinePayload{Data: data})
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	for _, c := range consents {
		it, err := h.newItem(id, ItemConsent, now, timelinePayload{Data: map[string]any{"topic": c.Topic, "value": c.Value, "source": c.Source}})
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

func (h *Handle) view(doc *contactDoc, p *personal) Contact {
	c := Contact{
		ID: doc.ID, Version: doc.Version, ExternalID: p.ExternalID, CrmID: p.CrmID, Email: p.Email, Phone: p.Phone,
		FirstName: p.FirstName, LastName: p.LastName, DateOfBirth: p.DateOfBirth, Gender: p.Gender, Country: doc.Country,
		Channels: p.Channels, CustomAttributes: p.CustomAttributes, Consents: p.Consents,
		Anonymized: doc.Anonymized, CreatedAt: doc.CreatedAt.UTC(), UpdatedAt: doc.UpdatedAt.UTC(),
	}
	for i := range c.Consents {
		c.Consents[i].UpdatedAt = c.Consents[i].UpdatedAt.UTC()
	}
	return c
}

// Upsert adds or updates a batch. The whole batch is validated first
// (nothing is written if any item is invalid); then each item is applied on
// its own and reported.
func (h *Handle) Upsert(ctx context.Context, mode, matchBy string, data []Input) ([]Result, error) {
	now := h.nowMs()
	var verr switchboard.ValidationError
	if mode != ModeAdd && mode != ModeUpdate && mode != ModeAddOrUpdate {
		verr.Fields = append(verr.Fields, switchboard.FieldError{Field: "mode", Message: "must be Add, Update or AddOrUpdate"})
	}
	if !slices.Contains(lookupKinds, matchBy) {
		verr.Fields = append(verr.Fields, switchboard.FieldError{Field: "matchBy", Message: "must be email, phone, crmId or externalId"})
	}
	if len(data) < 1 || len(data) > 1000 {
		verr.Fields = append(verr.Fields, switchboard.FieldError{Field: "data", Message: "must hold 1 to 1000 contacts"})
	}
	if len(verr.Fields) > 0 {
		return nil, &verr
	}
	norm := make([]Input, len(data))
	seen := map[string]int{}
	for i, in := range data {
		prefix := "data[" + fmt.Sprint(i) + "]."
		n, errs := normalize(in, prefix, now)
		verr.Fields = append(verr.Fields, errs...)
		norm[i] = n
		if len(errs) > 0 {
			continue
		}
		key := matchField(&n, matchBy)
		if !key.Set || key.Null {
			verr.Fields = append(verr.Fields, switchboard.FieldError{Field: prefix + matchBy, Message: "is required: it is the match key"})
			continue
		}
		if j, dup := seen[key.Value]; dup {
			verr.Fields = append(verr.Fields, switchboard.FieldError{Field: prefix + matchBy, Message: fmt.Sprintf("repeats the match key of data[%d]", j)})
			continue
		}
		seen[key.Value] = i
	}
	if len(verr.Fields) > 0 {
		return nil, &verr
	}
	return h.applyBatch(ctx, mode, matchBy, norm, now)
}

func matchField(in *Input, kind string) Field[string] {
	switch kind {
	case KeyEmail:
		return in.Email
	case KeyPhone:
		return in.Phone
	case KeyCrmID:
		return in.CrmID
	}
	return in.ExternalID
}

// Get returns one contact.
func (h *Handle) Get(ctx context.Context, id string) (Contact, error) {
	doc, p, err := h.load(ctx, id)
	if err != nil {
		return Contact{}, err
	}
	return h.view(doc, p), nil
}

// Lookup finds contacts by one exact value: kind is email, phone, crmId,
// externalId or channel. The value is normalised first; a value that cannot
// be normalised finds nothing.
func (h *Handle) Lookup(ctx context.Context, kind, value string) ([]Contact, error) {
	switch kind {
	case "channel":
		var idxs [][]byte
		if e, ok := NormalizeEmail(value); ok {
			idxs = append(idxs, h.index("channel", channelKey(Channel{"email", e})))
		}
		if ph, ok := switchboard.NormalizePhone(value, ""); ok {
			idxs = append(idxs, h.index("channel", channelKey(Channel{"sms", ph})), h.index("channel", channelKey(Channel{"whatsapp", ph})))
		}
		if len(idxs) == 0 {
			return nil, nil
		}
		cur, err := h.contacts().Find(ctx, bson.D{{Key: "channelIdx", Value: bson.D{{Key: "$in", Value: idxs}}}},
			options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(200))
		if err != nil {
			return nil, fmt.Errorf("lookup contacts: %w", err)
		}
		var docs []contactDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("lookup contacts: %w", err)
		}
		return h.views(ctx, docs)
	case KeyEmail, KeyPhone, KeyCrmID, KeyExternalID:
	default:
		return nil, fmt.Errorf("lookup kind %q", kind)
	}
	var v string
	var ok bool
	switch kind {
	case KeyEmail:
		v, ok = NormalizeEmail(value)
	case KeyPhone:
		v, ok = switchboard.NormalizePhone(value, "")
	default:
		v, ok = normalizeID(value)
	}
	if !ok {
		return nil, nil
	}
	doc, err := h.findBy(ctx, kind, v)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	doc, p, err := h.opened(ctx, doc)
	if err != nil {
		return nil, err
	}
	return []Contact{h.view(doc, p)}, nil
}

func (h *Handle) views(ctx context.Context, docs []contactDoc) ([]Contact, error) {
	out := make([]Contact, 0, len(docs))
	for i := range docs {
		if err := h.flush(ctx, docs[i].Pending); err != nil {
			return nil, err
		}
		p, err := h.open(&docs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, h.view(&docs[i], p))
	}
	return out, nil
}

// List returns a page of contacts, newest first, and the next cursor.
func (h *Handle) List(ctx context.Context, limit int, cursor string) ([]Contact, string, error) {
	filter := bson.D{}
	if cursor != "" {
		last, err := switchboard.DecodeCursor(cursor, 1)
		if err != nil {
			return nil, "", err
		}
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: last[0]}}}}
	}
	cur, err := h.contacts().Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("list contacts: %w", err)
	}
	var docs []contactDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("list contacts: %w", err)
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		next = switchboard.EncodeCursor(docs[limit-1].ID)
	}
	out, err := h.views(ctx, docs)
	return out, next, err
}

// Patch applies a JSON merge patch to a contact.
func (h *Handle) Patch(ctx context.Context, id string, expected int64, in Input) (Contact, error) {
	in, errs := normalize(in, "", h.nowMs())
	if len(errs) > 0 {
		return Contact{}, &switchboard.ValidationError{Fields: errs}
	}
	doc, p, err := h.change(ctx, id, expected, h.merging(in))
	if errors.Is(err, errConflict) {
		return Contact{}, ErrUniqueConflict
	}
	if err != nil {
		return Contact{}, err
	}
	return h.view(doc, p), nil
}

// ErrUniqueConflict: a patch would give the contact another contact's
// email, phone, crmId or externalId.
var ErrUniqueConflict = errors.New("value belongs to another contact")

// Delete removes a contact, its lookups and its timeline for good.
func (h *Handle) Delete(ctx context.Context, id string) error {
	doc, _, err := h.load(ctx, id)
	if err != nil {
		return err
	}
	// The document goes first: a crash before the entries are released
	// leaves them naming a contact that is gone, which frees them.
	if err := h.docs.Delete(ctx, id, doc.Version); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete contact: %w", err)
	}
	if err := h.release(ctx, id, doc.Idx); err != nil {
		return err
	}
	if _, err := h.timeline().DeleteMany(ctx, bson.D{{Key: "contactId", Value: id}}); err != nil {
		return fmt.Errorf("delete timeline: %w", err)
	}
	return nil
}

// Anonymize keeps a contact as a record without a person: names and
// attribute values become XXX, the email a placeholder, identifiers, phone,
// birth date, gender and channels go; country and consents stay; the texts
// of its timeline are erased.
func (h *Handle) Anonymize(ctx context.Context, id string) (Contact, error) {
	doc, p, err := h.change(ctx, id, store.AnyVersion, func(old *contactDoc, oldP *personal) (*personal, *string, bool, []timelineDoc, error) {
		xxx := func(s *string) *string {
			if s == nil {
				return nil
			}
			v := "XXX"
			return &v
		}
		email := "anonymized-" + id + "@example.invalid"
		p := &personal{FirstName: xxx(oldP.FirstName), LastName: xxx(oldP.LastName), Consents: oldP.Consents}
		if oldP.Email != nil {
			p.Email = &email
		}
		for _, a := range oldP.CustomAttributes {
			p.CustomAttributes = append(p.CustomAttributes, Attribute{Name: a.Name, Value: "XXX"})
		}
		items, err := h.items(id, ItemAnonymized, nil, nil, h.nowMs())
		return p, old.Country, true, items, err
	})
	if err != nil {
		return Contact{}, err
	}
	if err := h.scrubTimeline(ctx, id); err != nil {
		return Contact{}, err
	}
	return h.view(doc, p), nil
}

// scrubTimeline erases the texts of a contact's timeline items.
func (h *Handle) scrubTimeline(ctx context.Context, contactID string) error {
	cur, err := h.timeline().Find(ctx, bson.D{{Key: "contactId", Value: contactID}})
	if err != nil {
		return fmt.Errorf("scrub timeline: %w", err)
	}
	var docs []timelineDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("scrub timeline: %w", err)
	}
	for _, d := range docs {
		var p timelinePayload
		b, err := h.cipher.Open(timelineField(d.ID), d.Sealed)
		if err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		if p.Message == nil && p.SourceURL == nil && p.InitiatedBy == nil {
			continue
		}
		p.Message, p.SourceURL, p.InitiatedBy = nil, nil, nil
		if b, err = json.Marshal(p); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
		sealed, err := h.cipher.Seal(timelineField(d.ID), b)
		if err != nil {
			return err
		}
		if _, err := h.timeline().UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "sealed", Value: sealed}}}}); err != nil {
			return fmt.Errorf("scrub timeline: %w", err)
		}
	}
	return nil
}

// Timeline returns a page of a contact's timeline, newest first.
func (h *Handle) Timeline(ctx context.Context, id string, limit int, cursor string) ([]TimelineItem, string, error) {
	if _, _, err := h.load(ctx, id); err != nil {
		return nil, "", err
	}
	filter := bson.D{{Key: "contactId", Value: id}}
	if cursor != "" {
		// The cursor is the last item's (at, id): items sort by both.
		last, err := switchboard.DecodeCursor(cursor, 2)
		if err != nil {
			return nil, "", err
		}
		ms, err := strconv.ParseInt(last[0], 10, 64)
		if err != nil {
			return nil, "", switchboard.Invalid("cursor", "is not a cursor this list returned")
		}
		at, lastID := time.UnixMilli(ms).UTC(), last[1]
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: at}}}},
			bson.D{{Key: "at", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: lastID}}}},
		}})
	}
	cur, err := h.timeline().Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("timeline: %w", err)
	}
	var docs []timelineDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", fmt.Errorf("timeline: %w", err)
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		last := docs[limit-1]
		next = switchboard.EncodeCursor(strconv.FormatInt(last.At.UnixMilli(), 10), last.ID)
	}
	out := make([]TimelineItem, len(docs))
	for i, d := range docs {
		it, err := h.item(d)
		if err != nil {
			return nil, "", err
		}
		out[i] = it
	}
	return out, next, nil
}

func (h *Handle) item(d timelineDoc) (TimelineItem, error) {
	b, err := h.cipher.Open(timelineField(d.ID), d.Sealed)
	if err != nil {
		return TimelineItem{}, fmt.Errorf("open timeline item: %w", err)
	}
	var p timelinePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return TimelineItem{}, err
	}
	return TimelineItem{ID: d.ID, Type: d.Type, At: d.At.UTC(), EventType: p.EventType, Message: p.Message,
		SourceURL: p.SourceURL, InitiatedBy: p.InitiatedBy, Data: p.Data}, nil
}

// AddEvent records an external event on a contact's timeline.
func (h *Handle) AddEvent(ctx context.Context, id string, ev ExternalEvent) (TimelineItem, error) {
	var errs []switchboard.FieldError
	if n := utf8.RuneCountInString(ev.Type); n < 1 || n > 100 {
		errs = append(errs, switchboard.FieldError{Field: "type", Message: "must be 1 to 100 characters"})
	}
	if n := utf8.RuneCountInString(ev.Message); n < 1 || n > 2000 {
		errs = append(errs, switchboard.FieldError{Field: "message", Message: "must be 1 to 2000 characters"})
	}
	if ev.SourceURL != nil {
		u, err := url.Parse(*ev.SourceURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(*ev.SourceURL) > 2000 {
			errs = append(errs, switchboard.FieldError{Field: "sourceUrl", Message: "must be an http(s) URL"})
		}
	}
	if ev.InitiatedBy != nil {
		if n := utf8.RuneCountInString(strings.TrimSpace(*ev.InitiatedBy)); n < 1 || n > 200 {
			errs = append(errs, switchboard.FieldError{Field: "initiatedBy", Message: "must be 1 to 200 characters"})
		}
	}
	now := h.nowMs()
	at := now
	if ev.OccurredAt != nil {
		at = ev.OccurredAt.UTC().Truncate(time.Millisecond)
		if at.After(now.Add(5 * time.Minute)) {
			errs = append(errs, switchboard.FieldError{Field: "occurredAt", Message: "must not be in the future"})
		}
	}
	if len(errs) > 0 {
		return TimelineItem{}, &switchboard.ValidationError{Fields: errs}
	}
	if _, _, err := h.load(ctx, id); err != nil {
		return TimelineItem{}, err
	}
	typ, msg := ev.Type, ev.Message
	d, err := h.newItem(id, ItemExternalEvent, at, timelinePayload{EventType: &typ, Message: &msg, SourceURL: ev.SourceURL, InitiatedBy: ev.InitiatedBy})
	if err != nil {
		return TimelineItem{}, err
	}
	if _, err := h.timeline().InsertOne(ctx, d); err != nil {
		return TimelineItem{}, fmt.Errorf("record event: %w", err)
	}
	return h.item(d)
}
