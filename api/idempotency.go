package api

import (
	"bytes"
	"context"
	"io"

	"github.com/gin-gonic/gin"

	"github.com/switchboard/switchboard/idempotency"
	"github.com/switchboard/switchboard/tenants"
)

const idempotencyOwnerKey = "switchboard.idempotencyOwner"

// setIdempotencyOwner names the customer whose key seals a create route's
// stored answer (the customer created, or the tenant calling).
func setIdempotencyOwner(c *gin.Context, customerID string) { c.Set(idempotencyOwnerKey, customerID) }

// captureWriter keeps a copy of what the handler writes.
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
// the same request within 24 h get the first answer again, marked
// Idempotent-Replayed: true. scope names the caller, so keys of different
// callers never meet. Only successful answers are kept; after a failure the
// key is released and a retry runs the request again.
func idempotent(store *idempotency.Store, svc *tenants.Service, scope func(*gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		key, ok := c.Request.Header["Idempotency-Key"]
		if !ok {
			c.Next()
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			writeProblem(c, errPayloadTooLarge)
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		ctx := c.Request.Context()
		sc, k := scope(c), key[0]
		claim, replay, err := store.Begin(ctx, sc, k, idempotency.Fingerprint(c.Request.Method, c.Request.URL.Path, body))
		if err != nil {
			writeProblem(c, err)
			return
		}
		if replay != nil {
			cipher, err := svc.Cipher(ctx, replay.Owner)
			if err != nil {
				writeProblem(c, err)
				return
			}
			b, err := idempotency.Open(replay, cipher, sc, k)
			if err != nil {
				writeProblem(c, err)
				return
			}
			if replay.Location != "" {
				c.Header("Location", replay.Location)
			}
			c.Header("Idempotent-Replayed", "true")
			c.Data(replay.Status, "application/json; charset=utf-8", b)
			c.Abort()
			return
		}

		w := &captureWriter{ResponseWriter: c.Writer}
		c.Writer = w
		c.Next()
		c.Writer = w.ResponseWriter

		// The request's outcome is settled: keep its record even if the
		// client has gone.
		ctx = context.WithoutCancel(ctx)
		owner := c.GetString(idempotencyOwnerKey)
		status := w.Status()
		if status >= 200 && status < 300 && owner != "" {
			cipher, err := svc.Cipher(ctx, owner)
			if err == nil {
				err = store.Complete(ctx, claim, status, w.Header().Get("Location"), w.body.Bytes(), cipher)
			}
			if err == nil {
				return
			}
			logger(c).ErrorContext(ctx, "store idempotent answer", "requestId", requestID(c), "err", err)
		}
		if err := store.Release(ctx, claim); err != nil {
			logger(c).ErrorContext(ctx, "release idempotency key", "requestId", requestID(c), "err", err)
		}
	}
}
