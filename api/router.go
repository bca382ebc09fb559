// Package api is Switchboard's HTTP surface (gin): middleware (request id,
// access log, panic recovery, metrics, body limits, content type, partner
// authentication, rate limits), the partner admin routes, operations routes
// and the OpenAPI document. Handlers decode, call a domain service and
// encode; every error becomes a problem document in problem.go.
package api

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard/switchboard/contacts"
	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/messages"
	"github.com/switchboard/switchboard/tenants"
	"github.com/switchboard/switchboard/tokens"
	"github.com/switchboard/switchboard/webhooks"
)

// Config holds what the router needs.
type Config struct {
	Tenants     *tenants.Service
	Tokens      *tokens.Service
	Contacts    *contacts.Service
	Idempotency *idempotency.Store
	Logger      *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// Ready reports whether the service can serve (database reachable).
	Ready func(context.Context) error
	// RateLimit is the sustained requests per second of each partner and of
	// each customer's apps together (default 100), RateBurst their burst
	// (default 200).
	RateLimit float64
	RateBurst int
	// Now is the clock of the rate limits; nil means time.Now.
	Now func() time.Time
	// ErasureKeys publishes the keys of erasure certificates at
	// /.well-known/erasure-keys.json; nil: no such route.
	ErasureKeys *tokens.ErasureKeys
	// Messages is the messaging service; nil: no messaging routes.
	Messages *messages.Service
	// Webhooks is the pushed events service; nil: no webhook endpoint
	// routes.
	Webhooks *webhooks.Service
	// PublicURL is SWITCHBOARD_PUBLIC_URL: Twilio's webhook signatures are
	// checked over it.
	PublicURL string
	// CursorKey authenticates list cursors (crypto.MasterKey.DeriveKey);
	// nil means a random key, good for this process only.
	CursorKey []byte
	// TwilioWebhookLimit is how many Twilio callbacks per second (and in a
	// burst) each client address may have refused (a bad or missing
	// signature, a form Twilio could not have sent) before it gets 429
	// (SWITCHBOARD_TWILIO_WEBHOOK_LIMIT; default 20). Callbacks that pass
	// the check are never limited.
	TwilioWebhookLimit float64
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client (SWITCHBOARD_TRUSTED_PROXIES); without them the client is the
	// peer, whatever the headers say.
	TrustedProxies []netip.Prefix
}

// NewRouter returns the HTTP handler of every route.
func NewRouter(cfg Config) *gin.Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 100
	}
	if cfg.RateBurst == 0 {
		cfg.RateBurst = 200
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TwilioWebhookLimit <= 0 {
		cfg.TwilioWebhookLimit = 20
	}
	if cfg.CursorKey == nil {
		cfg.CursorKey = make([]byte, 32)
		rand.Read(cfg.CursorKey)
	}
	cur := cursors{key: cfg.CursorKey}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	// The client address (limits of failed authentications and refused
	// callbacks) is the peer's, or what X-Forwarded-For says after the
	// last trusted proxy; no other header names it.
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	proxies := make([]string, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		proxies[i] = p.Masked().String()
	}
	if len(proxies) == 0 {
		proxies = nil
	}
	if err := r.SetTrustedProxies(proxies); err != nil {
		panic("api: trusted proxies: " + err.Error()) // a netip.Prefix always parses
	}
	m := newMetrics(cfg.Registry)
	r.Use(withRequestID(cfg.Logger), accessLog(cfg.Logger), recoverProblem(), m.handler(), limitBody())
	r.NoRoute(func(c *gin.Context) { writeProblem(c, errNoRoute) })
	r.NoMethod(func(c *gin.Context) { writeProblem(c, errNoMethod) })

	getAndHead(r, "/healthz", query(), func(c *gin.Context) { reply(c, http.StatusOK, map[string]string{"status": "ok"}) })
	getAndHead(r, "/readyz", query(), func(c *gin.Context) {
		if err := cfg.Ready(c.Request.Context()); err != nil {
			logger(c).WarnContext(c.Request.Context(), "not ready", "err", err)
			writeProblem(c, errNotReady)
			return
		}
		reply(c, http.StatusOK, map[string]string{"status": "ready"})
	})
	getAndHead(r, "/metrics", query(), gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	registerDocs(r)

	h := partnerHandlers{svc: cfg.Tenants, contacts: cfg.Contacts, webhooks: cfg.Webhooks, cursors: cur}
	lim := newLimiter(cfg.RateLimit, cfg.RateBurst, cfg.Now)
	// 100 authentications being checked or failed per client address, then
	// one failure a second.
	fails := newLimiter(1, 100, cfg.Now)
	v1 := r.Group("/v1", fails.authFailures(), partnerAuth(cfg.Tenants), lim.limit(func(c *gin.Context) string { return "partner:" + partner(c).ID }))
	getAndHead(v1, "/industries", query(), h.industries)
	v1.POST("/customers", query(), idempotent(cfg.Idempotency, cfg.Tenants, func(c *gin.Context) string { return "partner:" + partner(c).ID }), h.register)
	getAndHead(v1, "/customers", query("limit", "cursor", "status"), h.list)
	getAndHead(v1, "/customers/:id", query(), h.get)
	v1.POST("/customers/:id/activate", query(), h.transition(activate))
	v1.PUT("/customers/:id/contact-info", query(), h.contactInfo)
	v1.POST("/customers/:id/deactivate", query(), h.transition(deactivate))
	v1.POST("/customers/:id/terminate", query(), h.terminate)
	v1.PUT("/customers/:id/retention", query(), h.retention)
	getAndHead(v1, "/customers/:id/events", query("limit", "cursor"), h.events)
	getAndHead(v1, "/customers/:id/erasure-certificate", query(), h.certificate)
	if cfg.Contacts != nil {
		v1.POST("/customers/:id/export", query(), h.export)
	}
	if cfg.Messages != nil {
		nh := numberHandlers{svc: cfg.Messages}
		v1.POST("/customers/:id/phone-numbers", query(), idempotent(cfg.Idempotency, cfg.Tenants, func(c *gin.Context) string { return "partner:" + partner(c).ID }), nh.buy)
		getAndHead(v1, "/customers/:id/phone-numbers", query(), nh.list)
		v1.DELETE("/customers/:id/phone-numbers/:numberId", query(), nh.release)
	}
	if cfg.ErasureKeys != nil {
		getAndHead(r, "/.well-known/erasure-keys.json", query(), func(c *gin.Context) {
			keys, err := cfg.ErasureKeys.JWKS(c.Request.Context())
			if err != nil {
				writeProblem(c, err)
				return
			}
			c.Header("Cache-Control", "public, max-age=300")
			reply(c, http.StatusOK, map[string]any{"keys": keys})
		})
	}

	if cfg.Tokens == nil || cfg.Contacts == nil {
		return r
	}
	th := tokenHandlers{tenants: cfg.Tenants, tokens: cfg.Tokens}
	getAndHead(r, "/.well-known/jwks.json", query(), th.jwks)
	v1.POST("/customers/:id/tokens", query(), th.mint)

	ch := contactHandlers{cursors: cur, messages: cfg.Messages}
	// Cheap refusals first: verify, limit, scope; only then open the data.
	tenant := r.Group("/v1/contacts", fails.authFailures(), tenantAuth(cfg.Tokens), lim.limit(func(c *gin.Context) string { return "tenant:" + tenantClaims(c).CustomerID }),
		scope(tokens.ContactsRead, tokens.ContactsWrite), openContacts(cfg.Contacts))
	tenantScope := func(c *gin.Context) string { return "tenant:" + tenantClaims(c).CustomerID }
	tenant.POST("", query(), idempotent(cfg.Idempotency, cfg.Tenants, tenantScope), ch.upsert)
	getAndHead(tenant, "", query(append([]string{"limit", "cursor"}, lookupParams...)...), ch.list)
	getAndHead(tenant, "/:id", query(), ch.get)
	tenant.PATCH("/:id", query(), ch.patch)
	tenant.DELETE("/:id", query("anonymize"), ch.delete)
	getAndHead(tenant, "/:id/timeline", query("limit", "cursor"), ch.timeline)
	tenant.POST("/:id/events", query(), idempotent(cfg.Idempotency, cfg.Tenants, tenantScope), ch.event)
	if cfg.Messages == nil {
		return r
	}
	if cfg.Webhooks != nil {
		cfg.Webhooks.SetRender(eventData)
		eh := endpointHandlers{svc: cfg.Webhooks, cursors: cur}
		eps := r.Group("/v1/webhook-endpoints", fails.authFailures(), eitherAuth(cfg.Tenants, cfg.Tokens), lim.limit(caller))
		eps.POST("", query(), eh.create)
		getAndHead(eps, "", query(), eh.list)
		getAndHead(eps, "/:id", query(), eh.get)
		eps.PATCH("/:id", query(), eh.patch)
		eps.DELETE("/:id", query(), eh.delete)
		eps.POST("/:id/rotate-secret", query(), eh.rotate)
		eps.POST("/:id/test", query(), eh.test)
		getAndHead(eps, "/:id/deliveries", query("limit", "cursor", "status"), eh.deliveries)
		eps.POST("/:id/deliveries/:deliveryId/retry", query(), eh.retry)
	}
	mh := messageHandlers{cursors: cur}
	msgs := r.Group("/v1", fails.authFailures(), tenantAuth(cfg.Tokens), lim.limit(tenantScope),
		scope(tokens.MessagesRead, tokens.MessagesSend), openMessages(cfg.Messages))
	msgs.POST("/messages", query(), mh.send)
	getAndHead(msgs, "/messages", query("limit", "cursor", "contactId", "direction", "status", "phone"), mh.list)
	getAndHead(msgs, "/messages/:id", query(), mh.get)
	msgs.DELETE("/messages/:id", query(), mh.redact)
	getAndHead(msgs, "/opt-outs/:phone", query(), mh.optOut)
	msgs.PUT("/opt-outs/:phone", query(), mh.setOptOut)
	wh := newWebhooks(cfg.PublicURL, cfg.TwilioWebhookLimit, cfg.Now)
	hooks := r.Group("/v1/webhooks/twilio")
	hooks.POST("/inbound", query(), wh.handle(func(c *gin.Context, w messages.Webhook) error {
		return cfg.Messages.Inbound(c.Request.Context(), w)
	}))
	hooks.POST("/status", query("mid"), wh.handle(func(c *gin.Context, w messages.Webhook) error {
		return cfg.Messages.StatusCallback(c.Request.Context(), w, c.Query("mid"))
	}))
	return r
}

// getAndHead registers a GET route and its HEAD (RFC 9110: HEAD answers as
// GET would, headers and status, without the body, which net/http drops).
func getAndHead(g gin.IRoutes, path string, handlers ...gin.HandlerFunc) {
	g.GET(path, handlers...)
	g.HEAD(path, handlers...)
}
