package twilio_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/twilio"
)

// sign computes X-Twilio-Signature as Twilio documents it, independently
// of twilio-go: HMAC-SHA1 keyed with the auth token over the full URL
// followed by each POST parameter's name and value, names sorted, base64.
func sign(token, rawURL string, params map[string]string) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(rawURL)
	for _, k := range names {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestValidSignature(t *testing.T) {
	// A fixed vector, computed outside Go with the documented algorithm.
	exampleURL := "https://mycompany.com/myapp.php?foo=1&bar=2"
	example := map[string]string{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
		"From": "+12349013030", "To": "+18005551212"}
	if got := sign("12345", exampleURL, example); got != "0/KCTR6DLpKmkAf8muzZqo1nDgQ=" {
		t.Fatalf("the reference signer is wrong: %s", got)
	}
	if !twilio.ValidSignature("12345", exampleURL, example, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=") {
		t.Fatal("the reference vector does not verify")
	}

	const token = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
	hook := "https://switchboard.example.com/v1/webhooks/twilio/inbound?x=1"
	params := map[string]string{"AccountSid": "AC" + strings.Repeat("1", 32), "Body": "hello", "From": "+14155550100", "To": "+14155550199"}
	sig := sign(token, hook, params)
	tampered := map[string]string{}
	for k, v := range params {
		tampered[k] = v
	}
	tampered["Body"] = "hello!"
	extra := map[string]string{"Extra": ""}
	for k, v := range params {
		extra[k] = v
	}
	for _, tc := range []struct {
		name, token, url, sig string
		params                map[string]string
		want                  bool
	}{
		{"as signed", token, hook, sig, params, true},
		{"with the default port", token, strings.Replace(hook, ".com/", ".com:443/", 1), sig, params, true},
		{"another account's token", "0" + token[1:], hook, sig, params, false},
		{"tampered body", token, hook, sig, tampered, false},
		{"an added parameter", token, hook, sig, extra, false},
		{"another path", token, strings.Replace(hook, "inbound", "status", 1), sig, params, false},
		{"another query", token, strings.Replace(hook, "x=1", "x=2", 1), sig, params, false},
		{"http instead of https", token, strings.Replace(hook, "https", "http", 1), sig, params, false},
		{"no signature", token, hook, "", params, false},
		{"no token", "", hook, sign("", hook, params), params, false},
		{"signature not base64", token, hook, "not a signature", params, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := twilio.ValidSignature(tc.token, tc.url, tc.params, tc.sig); got != tc.want {
				t.Fatalf("ValidSignature = %v, want %v", got, tc.want)
			}
		})
	}
}

// portVariants are the URLs Twilio may have signed for rawURL: as given,
// and with or without the scheme's default port.
func portVariants(rawURL string) []string {
	out := []string{rawURL}
	u, err := url.Parse(rawURL)
	if err != nil {
		return out
	}
	if u.Port() != "" {
		v := *u
		v.Host = u.Hostname()
		return append(out, v.String())
	}
	v := *u
	if u.Scheme == "https" {
		v.Host = u.Host + ":443"
	} else {
		v.Host = u.Host + ":80"
	}
	return append(out, v.String())
}

func FuzzValidSignature(f *testing.F) {
	f.Add("tok", "https://x.example/v1/webhooks/twilio/status", "AccountSid", "AC1", "sig")
	f.Add("", "", "", "", "")
	f.Add("tok", "https://x.example:443/p?q=1", "Body", "hi", "")
	f.Add("tok", "http://x.example:8080/p", "Body", "hé", "AAAA")
	f.Add("tok", "%zz://bad url", "a", "b", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
	f.Fuzz(func(t *testing.T, token, rawURL, k, v, sig string) {
		params := map[string]string{k: v, "AccountSid": "AC" + strings.Repeat("1", 32)}
		// Whatever the input, the real signature verifies...
		if token != "" && !twilio.ValidSignature(token, rawURL, params, sign(token, rawURL, params)) {
			t.Fatalf("the real signature of %q is refused", rawURL)
		}
		// ...and nothing else does.
		if !twilio.ValidSignature(token, rawURL, params, sig) {
			return
		}
		if token == "" || sig == "" {
			t.Fatal("an empty token or signature verified")
		}
		for _, u := range portVariants(rawURL) {
			if sig == sign(token, u, params) {
				return
			}
		}
		t.Fatalf("accepted the wrong signature %q for %q", sig, rawURL)
	})
}
