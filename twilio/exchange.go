package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/twilio/twilio-go/client"

	"github.com/switchboard/switchboard/tenants"
)

// exchange is the http.RoundTripper of one port call. It sends every
// request twilio-go makes to the configured API URL (twilio-go hard-codes
// https://api.twilio.com, and next_page_uri is joined to that too), ties it
// to the caller's context as well as to the http.Client's timeout, and
// remembers the last HTTP status so that an error twilio-go could not decode
// can still be classified.
type exchange struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper

	mu       sync.Mutex
	status   int
	cleanups []func()
}

// RoundTrip implements http.RoundTripper.
func (e *exchange) RoundTrip(r *http.Request) (*http.Response, error) {
	// r's context carries the http.Client's deadline; the caller's context
	// cancels it too. Both must stay alive until twilio-go has read the
	// body, so they are released in finish, after the call returned.
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(e.ctx, func() { cancel(context.Cause(e.ctx)) })
	if e.ctx.Err() != nil {
		// AfterFunc runs its function in a goroutine of its own: a call
		// already cancelled must not race it to the network.
		cancel(context.Cause(e.ctx))
	}
	e.mu.Lock()
	e.cleanups = append(e.cleanups, func() { stop(); cancel(nil) })
	e.mu.Unlock()

	out := r.Clone(ctx)
	out.URL.Scheme = e.base.Scheme
	out.URL.Host = e.base.Host
	out.URL.Path = strings.TrimSuffix(e.base.Path, "/") + r.URL.Path
	out.URL.RawPath = ""
	out.Host = ""
	resp, err := e.next.RoundTrip(out)
	if resp != nil {
		e.mu.Lock()
		e.status = resp.StatusCode
		e.mu.Unlock()
	}
	return resp, err
}

// finish releases the contexts of every request of the call.
func (e *exchange) finish() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.cleanups {
		f()
	}
	e.cleanups = nil
}

func (e *exchange) lastStatus() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// fail translates a twilio-go error into the port's vocabulary. The text
// names the HTTP status and Twilio's code and message, never a URL, a
// header or a body, so it cannot carry a credential.
func (e *exchange) fail(op string, err error) error {
	if status, code, message, ok := restError(err); ok {
		return classify(op, status, code, message, e.lastStatus())
	}
	if failed := e.transportFail(op, err); failed != nil {
		return failed
	}
	// twilio-go could not read the answer: not Twilio's JSON.
	status := e.lastStatus()
	switch {
	case status == 0 || status < 400 || status >= 500 || status == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w: unreadable answer (HTTP %d)", op, tenants.ErrUpstreamUnavailable, status)
	default:
		return fmt.Errorf("%s: unexpected answer (HTTP %d)", op, status)
	}
}

// restError returns the status, code and message of Twilio's error body,
// when err carries one.
func restError(err error) (status, code int, message string, ok bool) {
	var rest *client.TwilioRestError
	if errors.As(err, &rest) {
		return rest.Status, rest.Code, rest.Message, true
	}
	var restV1 *client.RestErrorV1
	if errors.As(err, &restV1) {
		return restV1.HttpStatusCode, restV1.Code, restV1.Message, true
	}
	return 0, 0, "", false
}

// transportFail classifies an error that never reached Twilio's answer (the
// caller gave up, no answer in time, a connection that failed), or returns
// nil for an answer twilio-go could not read.
func (e *exchange) transportFail(op string, err error) error {
	if cerr := e.ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w: %w", op, tenants.ErrUpstreamUnavailable, cerr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("%s: %w: no answer in time", op, tenants.ErrUpstreamUnavailable)
		}
		return fmt.Errorf("%s: %w: connection failed", op, tenants.ErrUpstreamUnavailable)
	}
	return nil
}

// classify maps one Twilio error body. status falls back to the HTTP status
// seen when the body left it out.
func classify(op string, status, code int, message string, seen int) error {
	if status == 0 {
		status = seen
	}
	switch {
	case code == codeSubaccountLimit:
		return fmt.Errorf("%s: %w (Twilio error %d)", op, tenants.ErrTwilioSubaccountLimit, code)
	case status >= 500 || status == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w (Twilio status %d, error %d)", op, tenants.ErrUpstreamUnavailable, status, code)
	case status == http.StatusNotFound:
		return fmt.Errorf("%s: %w (Twilio error %d)", op, tenants.ErrSubaccountNotFound, code)
	default:
		return fmt.Errorf("%s: Twilio refused (status %d, error %d): %s", op, status, code, message)
	}
}
