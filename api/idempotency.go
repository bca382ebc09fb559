package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/tenants"
)

const idempotencyOwnerKey = "switchboard.idempotencyOwner"

// setIdempotencyOwner names the customer whose key seals a create route's
// stored answer (the customer created, or the tenant calling). A handler
// that succeeds without naming one leaves nothing to replay: the stored
// answer must never exist unsealed.
func setIdempotencyOwner(c *gin.Context, customerID string) { c.Set(idempotencyOwnerKey, customerID) }

// captureWriter keeps a copy of what the handler writes, to store it.
type captureWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) {
	w.body.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}

// idempotent makes a create route honour Idempotency-Key: the same key and
// the same request (method, path, body) within 24 h get the first answer
// again, marked Idempotent-Replayed: true; the same key with another request
// is 422 idempotency_key_reused, and a retry while the first still runs 409
// idempotency_in_progress. scope names the caller, so keys of different
// callers never meet. Only successful answers whose handler named an owner
// (setIdempotencyOwner) are kept, sealed under the owner's key; after any
// other outcome, a panic included, the key is released and a retry runs the
// request again. Without the header it does nothing.
func idempotent(store *idempotency.Store, svc *tenants.Service, scope func(*gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		keys, ok := c.Request.Header["Idempotency-Key"]
		if !ok {
			c.Next()
			return
		}
		// The body is already limited to maxBody; read it to fingerprint the
		// request, and give the handler a fresh reader over the same bytes.
		body, err := readBody(c)
		if err != nil {
			writeProblem(c, err)
			return
		}
		// A request holding a key ends well before its claim counts as
		// dead (StaleClaim): a retry may only take a claim over once its
		// request can no longer be running.
		ctx, cancel := context.WithTimeout(c.Request.Context(), idempotency.StaleClaim-15*time.Second)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		fingerprint := idempotency.Fingerprint(c.Request.Method, c.Request.URL.Path, body)
		claim, replay, err := store.Begin(ctx, scope(c), keys[0], fingerprint)
		if err != nil {
			if errors.Is(err, idempotency.ErrInProgress) {
				c.Header("Retry-After", "1")
			}
			writeProblem(c, err)
			return
		}
		if replay != nil {
			replayAnswer(c, svc, replay)
			return
		}

		w := &captureWriter{ResponseWriter: c.Writer}
		c.Writer = w
		finished := false
		defer func() {
			c.Writer = w.ResponseWriter
			// The outcome is settled: record it even if the client has gone.
			ctx := context.WithoutCancel(ctx)
			owner := c.GetString(idempotencyOwnerKey)
			status := w.Status()
			if finished && w.Written() && status >= 200 && status < 300 && owner != "" {
				cipher, err := svc.Cipher(ctx, owner)
				if err == nil {
					err = store.Complete(ctx, claim, status, w.Header().Get("Location"), w.body.Bytes(), cipher)
				}
				if err == nil {
					return
				}
				logger(c).ErrorContext(ctx, "store idempotent answer", "requestId", requestID(c), "err", err)
			}
			// Not a success (or a panic, which recovery answers later): let a
			// retry run the request again.
			if err := store.Release(ctx, claim); err != nil {
				logger(c).ErrorContext(ctx, "release idempotency key", "requestId", requestID(c), "err", err)
			}
		}()
		c.Next()
		finished = true
	}
}

// replayAnswer writes a stored answer again, opened with its owner's key: an
// owner shredded since then answers 410 data_shredded, as every read of its
// data does.
// stillTrue keeps a replayed answer from saying what erasure has erased
// since: an external event recorded on a contact that was deleted since is
// not found, and on one anonymized since it comes back with its texts
// erased, as its timeline now shows it.
func stillTrue(c *gin.Context, body []byte) ([]byte, error) {
	if c.FullPath() != "/v1/contacts/:id/events" {
		return body, nil
	}
	ct, err := contactsOf(c).Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		return nil, err
	}
	if !ct.Anonymized {
		return body, nil
	}
	var item map[string]any
	if err := json.Unmarshal(body, &item); err != nil {
		return nil, err
	}
	for _, k := range []string{"message", "sourceUrl", "initiatedBy"} {
		item[k] = nil
	}
	return json.Marshal(item)
}

func replayAnswer(c *gin.Context, svc *tenants.Service, replay *idempotency.Response) {
	cipher, err := svc.Cipher(c.Request.Context(), replay.Owner)
	if err != nil {
		writeProblem(c, err)
		return
	}
	body, err := replay.Open(cipher)
	if err != nil {
		writeProblem(c, err)
		return
	}
	if body, err = stillTrue(c, body); err != nil {
		writeProblem(c, err)
		return
	}
	if replay.Location != "" && replay.Status == http.StatusCreated {
		c.Header("Location", replay.Location)
	}
	c.Header("Idempotent-Replayed", "true")
	c.Data(replay.Status, "application/json; charset=utf-8", body)
	c.Abort()
}
