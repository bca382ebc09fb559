package twilio

import "github.com/twilio/twilio-go/client"

// ValidSignature reports whether signature is the X-Twilio-Signature Twilio
// computes for a callback to url with the given form params, signed with
// authToken: the auth token of the account that owns the number, never the
// master's. It uses twilio-go's request validator (HMAC-SHA1 over the URL
// followed by every parameter name and value in name order, base64; the URL
// is tried with and without its default port, as Twilio signs either) and
// compares in constant time. An empty token or signature never verifies.
func ValidSignature(authToken, url string, params map[string]string, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	v := client.NewRequestValidator(authToken)
	return v.Validate(url, params, signature)
}

// ValidSignature is the messages.Twilio port's check of a callback: the
// package's ValidSignature, so production checks callbacks with the one
// function the fuzz target exercises.
func (*Client) ValidSignature(authToken, url string, params map[string]string, signature string) bool {
	return ValidSignature(authToken, url, params, signature)
}

// ValidSignature is the messages.Twilio port's check of a callback: the
// package's ValidSignature, as with the Client.
func (*Sandbox) ValidSignature(authToken, url string, params map[string]string, signature string) bool {
	return ValidSignature(authToken, url, params, signature)
}
