// Package webhooks pushes events to the HTTPS endpoints of tenant apps and
// partners: the endpoints, the events written with the changes that cause
// them, their deliveries (signed as Standard Webhooks specifies, retried
// with backoff until delivered) and the worker that delivers them.
//
// An event exists before its change does and takes effect only once the
// change has won: the domain's store calls Hold right before it inserts the
// change's claim (store.Versioned.Hold), which writes the event, its body
// sealed under the customer's key, and a due entry; the worker fans the
// event out to its endpoints only after it has read the claim and found
// the change's own writer there, and drops it when the claim never came.
// So no change is without its event and no event goes out for a change
// that did not happen, across a crash between the two writes too.
//
// Every piece of work is an entry of the control collection webhook_due,
// keyed by the time it is due, so the worker reads only what is due.
// Attempts are claims of the delivery's next version: of several serve
// processes one makes each attempt.
package webhooks

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/switchboard/switchboard/crypto"
	"github.com/switchboard/switchboard/store"
)

// Errors of the package (the api maps each to a problem document).
var (
	ErrNotFound = errors.New("webhook endpoint not found")
	// ErrLimitReached: the owner has MaxEndpoints endpoints already.
	ErrLimitReached = errors.New("webhook endpoint limit reached")
	// ErrInvalidTransition: a retry of a delivery that is not failed.
	ErrInvalidTransition = errors.New("delivery is not failed")
	// ErrMissingScope is wrapped by a subscription the token's scopes do
	// not allow (its message names the scope).
	ErrMissingScope = errors.New("missing scope")
)

// MaxEndpoints is how many endpoints a tenant or a partner may have.
const MaxEndpoints = 20

// Tenant event types, and the scope each needs besides webhooks:write.
var tenantEvents = []struct{ typ, scope string }{
	{"message.received", "messages:read"},
	{"message.status_changed", "messages:read"},
	{"opt_out.changed", "messages:read"},
	{"contact.created", "contacts:read"},
	{"contact.updated", "contacts:read"},
	{"contact.deleted", "contacts:read"},
	{"contact.anonymized", "contacts:read"},
	{TestEvent, ""},
}

// Partner event types: no personal or business data.
var partnerEvents = []string{
	"customer.registered", "customer.activated", "customer.deactivated",
	"customer.terminated", "customer.shredded", "customer.retention_changed",
	"registration.status_changed", "phone_number.purchased", "phone_number.released",
	TestEvent,
}

// TestEvent is the event of POST /v1/webhook-endpoints/{id}/test.
const TestEvent = "webhook.test"

// Owner is who an endpoint belongs to: a customer (its tenant apps) or a
// partner.
type Owner struct {
	Partner bool
	ID      string
}

// Customer is the owner of a customer's tenant endpoints.
func Customer(id string) Owner { return Owner{ID: id} }

// Partner is the owner of a partner's endpoints.
func Partner(id string) Owner { return Owner{Partner: true, ID: id} }

// key is the owner in a due entry: "c:<id>" or "p:<id>".
func (o Owner) key() string {
	if o.Partner {
		return "p:" + o.ID
	}
	return "c:" + o.ID
}

func ownerOf(key string) (Owner, bool) {
	kind, id, ok := strings.Cut(key, ":")
	if !ok || id == "" || (kind != "c" && kind != "p") {
		return Owner{}, false
	}
	return Owner{Partner: kind == "p", ID: id}, true
}

// EventTypes is the list of event types o may subscribe to.
func EventTypes(o Owner) []string {
	if o.Partner {
		return slices.Clone(partnerEvents)
	}
	out := make([]string, len(tenantEvents))
	for i, e := range tenantEvents {
		out[i] = e.typ
	}
	return out
}

// Config is what a Service is built from.
type Config struct {
	// Control is the control database: partners' endpoints and events,
	// and the due list of all.
	Control *mongo.Database
	// Tenant is a customer's data handle (its endpoints, events,
	// deliveries).
	Tenant func(customerID string) *store.Tenant
	// Cipher is a customer's cipher: tenant secrets and bodies are sealed
	// under it. An error wrapping ErrShredded means the data is gone.
	Cipher func(ctx context.Context, customerID string) (*crypto.Cipher, error)
	// Master wraps partners' endpoint secrets.
	Master *crypto.MasterKey
	// Guard decides which addresses deliveries may reach.
	Guard Guard
	// RetryScale multiplies the retry schedule and its windows (the 3 days
	// a delivery is tried, the 5 days an endpoint may fail); 0 means 1.
	RetryScale float64
	// Version goes into the User-Agent of deliveries.
	Version string
	// Shredded reports whether err means the customer's data is gone for
	// good (its key destroyed): its tenant work is then dropped.
	Shredded func(err error) bool
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service manages endpoints and delivers events.
type Service struct {
	cfg    Config
	client interface {
		Do(*http.Request) (*http.Response, error)
	}
	wake   chan string // due keys this process just wrote
	render atomic.Pointer[func(any) any]
}

// SetRender sets how an event's data is shown: the API's JSON of the
// resource (the api package sets it when it builds its routes). Until it
// is set, data is marshalled as the domain gave it.
func (s *Service) SetRender(f func(any) any) { s.render.Store(&f) }

func (s *Service) data(v any) any {
	if f := s.render.Load(); f != nil {
		return (*f)(v)
	}
	return v
}

// NewService builds a Service over cfg.
func NewService(cfg Config) *Service {
	if cfg.RetryScale <= 0 {
		cfg.RetryScale = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Shredded == nil {
		cfg.Shredded = func(error) bool { return false }
	}
	return &Service{cfg: cfg, client: cfg.Guard.Client(attemptTimeout), wake: make(chan string, 4096)}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// colls are an owner's collections.
type colls struct {
	endpoints, endpointClaims      *store.Coll
	deliveries, deliveryClaims     *store.Coll
	bodies, events, slots, entries *store.Coll
}

func (s *Service) colls(o Owner) colls {
	if o.Partner {
		c := func(name string) *store.Coll {
			return store.Plain(s.cfg.Control.Collection(name)).Sub(o.ID + store.Sep)
		}
		return colls{
			endpoints: c("webhook_endpoints"), endpointClaims: c("webhook_endpoint_claims"),
			deliveries: c("webhook_deliveries"), deliveryClaims: c("webhook_delivery_claims"),
			bodies: c("webhook_bodies"), events: c("webhook_events"), slots: c("webhook_slots"),
			entries: c("webhook_indexes"),
		}
	}
	t := s.cfg.Tenant(o.ID)
	// The shared collections of a customer hold its events and slots as
	// prefixes of the endpoints' and bodies' collections, and its delivery
	// lists in the index entries every collection shares.
	return colls{
		endpoints: t.Collection("webhook_endpoints").Sub("e/"), endpointClaims: t.Collection("webhook_endpoint_claims"),
		deliveries: t.Collection("webhook_deliveries"), deliveryClaims: t.Collection("webhook_delivery_claims"),
		bodies: t.Collection("webhook_bodies").Sub("b/"), events: t.Collection("webhook_bodies").Sub("e/"),
		slots: t.Collection("webhook_endpoints").Sub("s/"), entries: t.Collection("indexes").Sub("webhooks/"),
	}
}

// due is the control collection of due work.
func (s *Service) due() *store.Coll { return store.Plain(s.cfg.Control.Collection("webhook_due")) }
