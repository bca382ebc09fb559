package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/switchboard/switchboard/webhooks"
)

// These tests check Switchboard's signatures with an implementation that is
// not the one it signs with: Svix's Go library, which reads the Standard
// Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) when
// no svix-* headers are present.

var body = []byte(`{"id":"evt_1","type":"message.delivered","data":{"messageId":"msg_1"}}`)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signed returns the headers of one delivery attempt at at.
func signed(t *testing.T, secrets []string, msgID string, at time.Time, body []byte) http.Header {
	t.Helper()
	h := http.Header{}
	if err := webhooks.Headers(h, secrets, msgID, at, body); err != nil {
		t.Fatal(err)
	}
	return h
}

func svixVerify(t *testing.T, secret string, body []byte, h http.Header) error {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(body, h)
}

func TestSignOneSecretVerifiesWithSvix(t *testing.T) {
	secret := newSecret(t)
	at := time.Now()
	h := signed(t, []string{secret}, "evt_1", at, body)
	for _, k := range []string{"svix-id", "svix-timestamp", "svix-signature"} {
		if h.Get(k) != "" {
			t.Fatalf("%s is set: Svix must read the webhook-* headers", k)
		}
	}
	if h.Get("webhook-id") != "evt_1" || h.Get("webhook-timestamp") != strconv.FormatInt(at.Unix(), 10) ||
		h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", h)
	}
	sig := h.Get("webhook-signature")
	if !strings.HasPrefix(sig, "v1,") || strings.Contains(sig, " ") {
		t.Fatalf("webhook-signature %q: want one v1,<sig>", sig)
	}
	if err := svixVerify(t, secret, body, h); err != nil {
		t.Fatalf("Svix refused the signature: %v", err)
	}
	alone, err := webhooks.Sign([]string{secret}, "evt_1", at, body)
	if err != nil || alone != sig {
		t.Fatalf("Sign %q %v, Headers' signature %q", alone, err, sig)
	}
}

// TestSignKnownVector is the test vector that Svix's and the Standard
// Webhooks libraries' own tests use.
func TestSignKnownVector(t *testing.T) {
	got, err := webhooks.Sign([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil || got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("Sign = %q, %v", got, err)
	}
}

func TestSignTwoSecretsEachVerifiesAlone(t *testing.T) {
	newest, older := newSecret(t), newSecret(t)
	at := time.Now()
	h := signed(t, []string{newest, older}, "evt_2", at, body)
	sigs := strings.Split(h.Get("webhook-signature"), " ")
	if len(sigs) != 2 {
		t.Fatalf("webhook-signature %q: want two space-separated signatures", h.Get("webhook-signature"))
	}
	for i, s := range []string{newest, older} {
		if err := svixVerify(t, s, body, h); err != nil {
			t.Fatalf("secret %d alone: Svix refused: %v", i, err)
		}
		// In the order given.
		if one, err := webhooks.Sign([]string{s}, "evt_2", at, body); err != nil || one != sigs[i] {
			t.Fatalf("signature %d is %q, secret %d alone signs %q (%v)", i, sigs[i], i, one, err)
		}
	}
	if err := svixVerify(t, newSecret(t), body, h); err == nil {
		t.Fatal("a third secret verified")
	}
}

func TestSignRefusedBySvix(t *testing.T) {
	secret := newSecret(t)
	h := signed(t, []string{secret}, "evt_3", time.Now(), body)

	tampered := bytes.Replace(body, []byte("delivered"), []byte("failed"), 1)
	if err := svixVerify(t, secret, tampered, h); err == nil {
		t.Error("a tampered body verified")
	}
	if err := svixVerify(t, newSecret(t), body, h); err == nil {
		t.Error("a wrong secret verified")
	}
	other := h.Clone()
	other.Set("webhook-id", "evt_4")
	if err := svixVerify(t, secret, body, other); err == nil {
		t.Error("another message id verified")
	}

	old := signed(t, []string{secret}, "evt_3", time.Now().Add(-10*time.Minute), body)
	if err := svixVerify(t, secret, body, old); err == nil {
		t.Error("a timestamp 10 minutes old verified")
	}
	// ... refused for its age alone: the signature itself is right.
	wh, _ := svix.NewWebhook(secret)
	if err := wh.VerifyIgnoringTimestamp(body, old); err != nil {
		t.Errorf("the old attempt's signature is wrong: %v", err)
	}
}

func TestSignRefusesBadSecrets(t *testing.T) {
	good := newSecret(t)
	for name, secrets := range map[string][]string{
		"no secret":       nil,
		"empty list":      {},
		"empty secret":    {""},
		"prefix only":     {"whsec_"},
		"no prefix":       {strings.TrimPrefix(good, "whsec_")},
		"not base64":      {"whsec_not*base64!"},
		"unpadded base64": {"whsec_" + base64.RawStdEncoding.EncodeToString([]byte("0123456789"))},
		"a bad second":    {good, "whsec_%%%"},
	} {
		if sig, err := webhooks.Sign(secrets, "evt_1", time.Now(), body); err == nil {
			t.Errorf("%s: signed %q", name, sig)
		}
		h := http.Header{}
		if err := webhooks.Headers(h, secrets, "evt_1", time.Now(), body); err == nil || len(h) != 0 {
			t.Errorf("%s: Headers %v, set %v", name, err, h)
		}
	}
	if _, err := webhooks.Sign([]string{good}, "", time.Now(), body); err == nil {
		t.Error("signed without a message id")
	}
}

func TestNewSecretFormat(t *testing.T) {
	a, b := newSecret(t), newSecret(t)
	if a == b {
		t.Fatal("two secrets are the same")
	}
	for _, s := range []string{a, b} {
		enc, ok := strings.CutPrefix(s, "whsec_")
		if !ok {
			t.Fatalf("%q has no whsec_ prefix", s)
		}
		key, err := base64.StdEncoding.Strict().DecodeString(enc)
		if err != nil || len(key) != 32 {
			t.Fatalf("%q: %d bytes, %v; want std base64 of 32 bytes", s, len(key), err)
		}
		if _, err := svix.NewWebhook(s); err != nil {
			t.Fatalf("Svix does not take %q: %v", s, err)
		}
	}
}
