package api

import (
	"errors"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard/messages"
)

// twiml is the empty TwiML answer to a webhook.
const twiml = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

// webhooks are the Twilio-facing routes: form-encoded callbacks, signed
// over the public URL with the path and query string as received.
type twilioHooks struct {
	publicURL string
	// refused limits, per client address, the callbacks that fail the
	// signature check: a token of the address's bucket per refusal, and
	// 429 instead of 403 once none is left. A callback that passes is
	// never limited: Twilio does not retry a refused status callback, so a
	// flood from the address Twilio shares (a proxy's, say) must not cost
	// a real one.
	refused *limiter
}

// newWebhooks returns the webhook routes' handlers: perSecond refusals per
// client address (the same as a burst).
func newWebhooks(publicURL string, perSecond float64, now func() time.Time) *twilioHooks {
	return &twilioHooks{publicURL: strings.TrimSuffix(publicURL, "/"),
		refused: newLimiter(perSecond, max(1, int(math.Ceil(perSecond))), now)}
}

// handle answers a Twilio callback with run's verdict: an empty TwiML
// document when it is applied (or knowingly ignored), a problem otherwise.
// The form is passed on as posted: what Twilio could have sent is the
// domain's rule (messages.Webhook).
func (h *twilioHooks) handle(run func(c *gin.Context, w messages.Webhook) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		mt, _, err := mime.ParseMediaType(c.Request.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			writeProblem(c, errFormType)
			return
		}
		if err := c.Request.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeProblem(c, errPayloadTooLarge)
				return
			}
			writeProblem(c, badRequest("", ""))
			return
		}
		w := messages.Webhook{URL: h.publicURL + c.Request.URL.RequestURI(), Form: c.Request.PostForm,
			Signature: c.GetHeader("X-Twilio-Signature")}
		if err := run(c, w); err != nil {
			if errors.Is(err, messages.ErrWebhookForbidden) {
				h.refuse(c)
				return
			}
			writeProblem(c, err)
			return
		}
		c.Data(http.StatusOK, "text/xml; charset=utf-8", []byte(twiml))
	}
}

// refuse answers a callback that failed the check: 403, or 429 once its
// client address (c.ClientIP: X-Forwarded-For only from a trusted proxy)
// has spent its refusals.
func (h *twilioHooks) refuse(c *gin.Context) {
	if wait, _, _ := h.refused.reserve("twilio-refused:" + c.ClientIP()); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeProblem(c, errRateLimited)
		return
	}
	writeProblem(c, messages.ErrWebhookForbidden)
}
