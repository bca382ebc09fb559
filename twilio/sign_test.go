package twilio_test

import (
	"strings"
	"testing"

	"github.com/switchboard/switchboard/twilio"
)

func TestSignMatchesTwiliosDocumentedExample(t *testing.T) {
	// Twilio's documentation example of a signed request.
	const exampleURL = "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := map[string]string{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
		"From": "+12349013030", "To": "+18005551212"}
	const want = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	if got := twilio.Sign("12345", exampleURL, params); got != want {
		t.Fatalf("Sign = %q, want Twilio's %q", got, want)
	}
	if !twilio.ValidSignature("12345", exampleURL, params, want) {
		t.Fatal("twilio-go refuses Twilio's documented example")
	}
}

func TestSignIsWhatValidSignatureAccepts(t *testing.T) {
	const token = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
	sid := "AC" + strings.Repeat("1", 32)
	for _, tc := range []struct {
		name, url string
		params    map[string]string
	}{
		{"status callback", "https://switchboard.example.com/v1/webhooks/twilio/status?mid=abc",
			map[string]string{"AccountSid": sid, "MessageSid": "SM" + strings.Repeat("2", 32), "MessageStatus": "delivered", "SmsStatus": "delivered"}},
		{"with a port", "http://127.0.0.1:8080/v1/webhooks/twilio/inbound",
			map[string]string{"AccountSid": sid, "Body": "héllo & <bye>", "From": "+14155550100", "To": "+14155550199"}},
		{"no params", "https://x.example/p", nil},
		{"empty values", "https://x.example/p?q=", map[string]string{"A": "", "B": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := twilio.Sign(token, tc.url, tc.params)
			if want := sign(token, tc.url, tc.params); got != want {
				t.Fatalf("Sign = %q, the reference signer says %q", got, want)
			}
			if !twilio.ValidSignature(token, tc.url, tc.params, got) {
				t.Fatal("ValidSignature refuses Sign's signature")
			}
			if twilio.ValidSignature("0"+token[1:], tc.url, tc.params, got) {
				t.Fatal("another token's signature verifies")
			}
		})
	}
}
