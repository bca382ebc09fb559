package main

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSandboxLoop runs the messaging loop of the README against the real
// server: a number, a send delivered through the sandbox's signed status
// callbacks, `switchboard sandbox inbound` (a signed inbound webhook from
// another process), STOP and the next send refused. Markers stay sealed.
func TestSandboxLoop(t *testing.T) {
	dir := t.TempDir()
	e := env{"SWITCHBOARD_ADDR": freeAddr(t), "SWITCHBOARD_DATA_DIR": dir}
	srv := startServer(t, e)
	out, err := cli(t, e, "partners", "create", "--name", "Sandbox Resellers")
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Split(strings.Split(out, `"apiKey":"`)[1], `"`)[0]
	st, c := srv.call(t, "POST", "/v1/customers", key, map[string]any{"space": "cafe", "industryId": "8f56c423-943d-5275-bb9f-9db8783c6dad", "label": "Cafe"})
	if st != 201 {
		t.Fatalf("register: %d %v", st, c)
	}
	id := c["id"].(string)
	srv.call(t, "POST", "/v1/customers/"+id+"/activate", key, map[string]any{})
	st, n := srv.call(t, "POST", "/v1/customers/"+id+"/phone-numbers", key, map[string]any{"phoneNumber": "+15005550006"})
	if st != 201 {
		t.Fatalf("buy: %d %v", st, n)
	}
	number := n["phoneNumber"].(string)
	_, tok := srv.call(t, "POST", "/v1/customers/"+id+"/tokens", key, map[string]any{"subject": "app"})
	jwt := tok["accessToken"].(string)
	const phone, body, reply = "+14155550166", "MARKER-BODY-4e1a", "MARKER-REPLY-9c2f"
	st, m := srv.call(t, "POST", "/v1/messages", jwt, map[string]any{"to": phone, "body": body})
	if st != 202 {
		t.Fatalf("send: %d %v", st, m)
	}
	deadline := time.Now().Add(20 * time.Second)
	for m["status"] != "delivered" {
		if time.Now().After(deadline) {
			t.Fatalf("never delivered: %v", m)
		}
		time.Sleep(100 * time.Millisecond)
		_, m = srv.call(t, "GET", "/v1/messages/"+m["id"].(string), jwt, nil)
	}
	if out, err := cli(t, e, "sandbox", "inbound", "--from", phone, "--to", number, "--body", reply); err != nil || !strings.Contains(out, `"status":200`) {
		t.Fatalf("sandbox inbound: %q %v", out, err)
	}
	_, list := srv.call(t, "GET", "/v1/messages?direction=inbound", jwt, nil)
	if items := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["body"] != reply {
		t.Fatalf("inbound: %v", list)
	}
	if _, err := cli(t, e, "sandbox", "inbound", "--from", phone, "--to", number, "--body", "STOP"); err != nil {
		t.Fatal(err)
	}
	if st, p := srv.call(t, "POST", "/v1/messages", jwt, map[string]any{"to": phone, "body": "again"}); st != 409 || p["code"] != "recipient_opted_out" {
		t.Fatalf("after STOP: %d %v", st, p)
	}
	if _, o := srv.call(t, "GET", "/v1/opt-outs/"+url.PathEscape(phone), jwt, nil); o["optedOut"] != true {
		t.Fatalf("opt-out: %v", o)
	}
	// START from this other process is confirmed by the server's sandbox
	// (it knows what `sandbox inbound` made), so it opts back in.
	if _, err := cli(t, e, "sandbox", "inbound", "--from", phone, "--to", number, "--body", "START"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, o := srv.call(t, "GET", "/v1/opt-outs/"+url.PathEscape(phone), jwt, nil)
		if o["optedOut"] == false && o["source"] == "sms:START" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("START never opted back in: %v", o)
		}
	}
	// A number that is no customer's is refused, and nothing is posted.
	if _, err := cli(t, e, "sandbox", "inbound", "--from", phone, "--to", "+14155550999", "--body", "hi"); err == nil {
		t.Fatal("sandbox inbound to nobody's number succeeded")
	}
	scan(t, dir, []string{body, reply, phone, strings.TrimPrefix(phone, "+")})
	if strings.Contains(srv.stderr.String(), body) || strings.Contains(srv.stderr.String(), strings.TrimPrefix(phone, "+")) {
		t.Fatal("the server's logs hold a message body or a phone number")
	}
}
