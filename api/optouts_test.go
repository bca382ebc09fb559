package api

import (
	"fmt"
	"net/url"
	"testing"
)

// TestOptOutPutCannotLiftTextedStop: an opt-in by PUT over a STOP the
// person texted is 409 opted_out_by_sms and changes nothing; an opt-out
// recorded by PUT is still lifted by PUT; a PUT may not pass for a text.
func TestOptOutPutCannotLiftTextedStop(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "optout-texted")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	const texted, called = "+14155550171", "+14155550172"
	path := func(p string) string { return "/v1/opt-outs/" + url.PathEscape(p) }

	stop := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": texted, "To": mc.number, "Body": "Stop"}
	if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", stop, tok, ""); st != 200 {
		t.Fatalf("STOP: %d %s", st, raw)
	}
	a.do(t, req{method: "PUT", path: path(texted), key: mc.token, body: `{"optedOut":false,"source":"front desk call"}`}).problem(t, 409, "opted_out_by_sms")
	if out, src := a.rvOptedOut(t, mc.token, texted); !out || src != "sms:STOP" {
		t.Fatalf("after the refused PUT: optedOut=%v source=%v, want true sms:STOP", out, src)
	}
	a.do(t, req{method: "POST", path: "/v1/messages", key: mc.token, body: `{"to":"` + texted + `","body":"hi"}`}).problem(t, 409, "recipient_opted_out")
	// A PUT that says it is a text is refused too.
	a.do(t, req{method: "PUT", path: path(texted), key: mc.token, body: `{"optedOut":false,"source":"sms:START"}`}).field(t, "source")
	// Recording another opt-out by PUT is no opt-in: allowed, and the
	// texted STOP still holds afterwards.
	if r := a.do(t, req{method: "PUT", path: path(texted), key: mc.token, body: `{"optedOut":true,"source":"front desk call"}`}); r.Status != 200 {
		t.Fatalf("PUT opt-out over a texted STOP: %d %s", r.Status, r.Raw)
	}
	// The person lifts it by texting (a message Twilio holds: an opt-in
	// waits for Twilio's confirmation).
	start := a.platform.Sandbox.Inbound(mc.accountSID, texted, mc.number, "START")
	if st, raw := a.hook(t, "/v1/webhooks/twilio/inbound", start, tok, ""); st != 200 {
		t.Fatalf("START: %d %s", st, raw)
	}
	a.waitOptOut(t, mc.token, texted, false)
	if out, src := a.rvOptedOut(t, mc.token, texted); out || src != "sms:START" {
		t.Fatalf("after START: optedOut=%v source=%v", out, src)
	}

	// An opt-out recorded by PUT is lifted by PUT.
	for _, body := range []string{`{"optedOut":true,"source":"phone call"}`, `{"optedOut":false,"source":"signed form"}`} {
		if r := a.do(t, req{method: "PUT", path: path(called), key: mc.token, body: body}); r.Status != 200 {
			t.Fatalf("PUT %s: %d %s", body, r.Status, r.Raw)
		}
	}
	if out, src := a.rvOptedOut(t, mc.token, called); out || src != "signed form" {
		t.Fatalf("after PUT opt-in: optedOut=%v source=%v", out, src)
	}
}

// TestOptOutPutRacingTextedStop releases one texted STOP and several PUT
// opt-ins at once, again and again: each PUT is 200 (it came first) or 409,
// and the STOP is never lost.
func TestOptOutPutRacingTextedStop(t *testing.T) {
	a := newTestAPIWith(t, apiOptions{sandbox: true})
	mc := a.messagingCustomer(t, "optout-race")
	tok := a.platform.Sandbox.AuthToken(mc.accountSID)
	refused, first := 0, 0
	for round := range 6 {
		phone := fmt.Sprintf("+141555502%02d", round)
		stop := map[string]string{"AccountSid": mc.accountSID, "MessageSid": newSID("SM"), "From": phone, "To": mc.number, "Body": "STOP"}
		const puts = 5
		status := make([]int, puts+1)
		rvRace(puts+1, func(i int) {
			if i == puts {
				status[i], _ = a.rvHook("/v1/webhooks/twilio/inbound", stop, tok)
				return
			}
			status[i], _, _ = a.rvDo("PUT", "/v1/opt-outs/"+url.PathEscape(phone), mc.token, `{"optedOut":false,"source":"web form"}`, nil)
		})
		if status[puts] != 200 {
			t.Fatalf("round %d: STOP answered %d", round, status[puts])
		}
		for _, st := range status[:puts] {
			switch st {
			case 200:
				first++
			case 409:
				refused++
			default:
				t.Fatalf("round %d: PUT answered %d", round, st)
			}
		}
		if out, src := a.rvOptedOut(t, mc.token, phone); !out || src != "sms:STOP" {
			t.Fatalf("round %d: the texted STOP was lost to a racing PUT: optedOut=%v source=%v", round, out, src)
		}
		a.do(t, req{method: "PUT", path: "/v1/opt-outs/" + url.PathEscape(phone), key: mc.token, body: `{"optedOut":false,"source":"web form"}`}).problem(t, 409, "opted_out_by_sms")
	}
	t.Logf("PUTs before the STOP: %d, refused after it: %d", first, refused)
}
