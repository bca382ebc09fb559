package messages

import (
	"net/url"
	"sort"
	"testing"

	"github.com/switchboard/switchboard"
)

// FuzzWebhookParams: whatever the form, what params accepts has every
// parameter once and every SID of Twilio's shape; and no accepted
// MessageSid can be re-cut to swallow the parameter after it (the same
// signature) and still be accepted.
func FuzzWebhookParams(f *testing.F) {
	sid := "SM0123456789abcdef0123456789abcdef"
	f.Add("AccountSid=AC0123456789abcdef0123456789abcdef&MessageSid=" + sid + "&NumMedia=0&SmsSid=" + sid)
	f.Add("AccountSid=AC0123456789abcdef0123456789abcdef&MessageSid=" + sid + "NumMedia0")
	f.Add("AccountSid=x&AccountSid=y")
	f.Add("MessagingServiceSid=MG0&Body=START")
	f.Fuzz(func(t *testing.T, raw string) {
		form, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		params, err := Webhook{Form: form}.params()
		if err != nil {
			return
		}
		for k, vs := range form {
			if len(vs) != 1 {
				t.Fatalf("accepted %q given %d times", k, len(vs))
			}
		}
		for name, prefixes := range sidParams {
			if v, ok := params[name]; ok && !switchboard.IsTwilioSID(v, prefixes...) {
				t.Fatalf("accepted %s=%q", name, v)
			}
		}
		// Re-cut: MessageSid swallows the next parameter by name.
		m, ok := params["MessageSid"]
		if !ok {
			return
		}
		names := make([]string, 0, len(params))
		for k := range params {
			names = append(names, k)
		}
		sort.Strings(names)
		i := sort.SearchStrings(names, "MessageSid")
		if i+1 >= len(names) {
			return
		}
		next := names[i+1]
		recut := url.Values{}
		for k, v := range params {
			if k != next {
				recut.Set(k, v)
			}
		}
		recut.Set("MessageSid", m+next+params[next])
		if _, err := (Webhook{Form: recut}).params(); err == nil {
			t.Fatalf("accepted the re-cut MessageSid %q", recut.Get("MessageSid"))
		}
	})
}
