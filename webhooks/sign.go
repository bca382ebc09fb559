package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// secretPrefix starts every endpoint secret.
const secretPrefix = "whsec_"

// secretBytes is the length of the random key behind a new secret.
const secretBytes = 32

// NewSecret returns a new endpoint secret: "whsec_" + base64 of 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the webhook-signature header value for one delivery attempt: one "v1,<sig>" per secret (in the order given, normally newest first), space-separated. It refuses an empty secret list or a malformed secret.
//
// The HMAC-SHA256 over "<msgID>.<unix seconds of at>.<body>" is the Standard
// Webhooks library's, keyed with the secret's decoded bytes.
func Sign(secrets []string, msgID string, at time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", errors.New("webhook signature: no secret")
	}
	if msgID == "" {
		return "", errors.New("webhook signature: no message id")
	}
	sigs := make([]string, 0, len(secrets))
	for i, s := range secrets {
		wh, err := webhook(s)
		if err != nil {
			// The secret itself is never part of the error.
			return "", fmt.Errorf("webhook signature: secret %d: %w", i, err)
		}
		sig, err := wh.Sign(msgID, at, body)
		if err != nil {
			return "", fmt.Errorf("webhook signature: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Headers sets webhook-id, webhook-timestamp, webhook-signature and Content-Type: application/json on h.
func Headers(h http.Header, secrets []string, msgID string, at time.Time, body []byte) error {
	sig, err := Sign(secrets, msgID, at, body)
	if err != nil {
		return err
	}
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	h.Set("Content-Type", "application/json")
	return nil
}

// webhook checks that secret is "whsec_" + padded standard base64 of a
// non-empty key and returns the library's signer for it. The library alone
// would also take a secret without the prefix.
func webhook(secret string) (*standardwebhooks.Webhook, error) {
	enc, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("malformed secret: it must start with %q", secretPrefix)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil || len(key) == 0 {
		return nil, errors.New("malformed secret: not " + secretPrefix + " + base64 of a key")
	}
	return standardwebhooks.NewWebhookRaw(key)
}
