package api

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestContactErasedAfterMessagesWithItsPhone: messages exchanged with a
// phone (and an sms channel address) before it became a contact keep
// contactId null; deleting or anonymizing the contact redacts them all the
// same, here (listed bodies gone) and at Twilio, and leaves another
// person's messages alone.
func TestContactErasedAfterMessagesWithItsPhone(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true, deliveryDelay: 50 * time.Millisecond})
	mc := a.messagingCustomer(t, "erase-whole")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	const other = "+14155550189"
	for _, tc := range []struct {
		name, phone, channel, query string
		status                      int
	}{
		{"delete", "+14155550181", "+14155550182", "", 204},
		{"anonymize", "+14155550183", "+14155550184", "?anonymize=true", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sids []string // Twilio's copies
			for _, to := range []string{tc.phone, tc.channel, other} {
				r := a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + to + `","body":"before-contact-` + tc.name + `"}`})
				if r.Status != 202 || r.Body["contactId"] != nil {
					t.Fatalf("send: %d %s", r.Status, r.Raw)
				}
				m := a.waitMessage(t, mc.token, r.Body["id"].(string), func(m map[string]any) bool { return m["status"] == "delivered" })
				if to != other {
					sids = append(sids, m["twilioSid"].(string))
				}
				in := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": to, "To": mc.number, "Body": "reply-" + tc.name}
				if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", in, tok, ""); st != 200 {
					t.Fatalf("inbound: %d %s", st, raw)
				}
			}
			c := a.do(t, req{method: "POST", path: "/v1/contacts", key: mc.token, body: `{"mode":"Add","matchBy":"phone","data":[{"phone":"` + tc.phone +
				`","channels":[{"type":"sms","address":"` + tc.channel + `"}]}]}`})
			if c.Status != 200 {
				t.Fatalf("contact: %d %s", c.Status, c.Raw)
			}
			cid := c.Body["results"].([]any)[0].(map[string]any)["id"].(string)
			if r := a.do(t, req{method: "DELETE", path: "/v1/contacts/" + cid + tc.query, key: mc.token}); r.Status != tc.status {
				t.Fatalf("erase: %d %s", r.Status, r.Raw)
			}
			for _, p := range []string{tc.phone, tc.channel} {
				items := a.do(t, req{method: "GET", path: "/v1/messages?phone=" + url.QueryEscape(p), key: mc.token}).Body["items"].([]any)
				if len(items) != 2 {
					t.Fatalf("%d messages with %s, want 2", len(items), p)
				}
				for _, it := range items {
					m := it.(map[string]any)
					if m["contactId"] != nil || m["body"] != nil || m["redactedAt"] == nil {
						t.Errorf("a message with the erased contact's %s kept its body: contactId %v body %v redactedAt %v", p, m["contactId"], m["body"], m["redactedAt"])
					}
				}
			}
			for _, it := range a.do(t, req{method: "GET", path: "/v1/messages?phone=" + url.QueryEscape(other), key: mc.token}).Body["items"].([]any) {
				if m := it.(map[string]any); m["body"] == nil || m["redactedAt"] != nil {
					t.Fatalf("another person's message was redacted: %v", m)
				}
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				var left []string
				for _, tm := range a.platform.Sandbox.SandboxMessages(mc.accountSID) {
					for _, sid := range sids {
						if tm.SID == sid && strings.Contains(tm.Body, "before-contact") {
							left = append(left, sid)
						}
					}
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Twilio still holds the bodies of %v", left)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
