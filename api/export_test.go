package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"filippo.io/age"
)

// TestExport: the stream decrypts with the recipient's identity (age's own
// API) and holds the customer, every contact, the timeline and every event;
// it does not decrypt with the master identity; a bad recipient is 422; the
// export is an event at the current version; after shredding, 410.
func TestExport(t *testing.T) {
	a := newTestAPI(t)
	id, tok := a.activeCustomer(t, a.key, "exported")
	var items []string
	for i := range 30 {
		items = append(items, fmt.Sprintf(`{"email":"p%d@example.com","firstName":"Person"}`, i))
	}
	a.do(t, req{method: "POST", path: "/v1/contacts", key: tok, body: `{"mode":"Add","matchBy":"email","data":[` + strings.Join(items, ",") + `]}`})
	ep := a.do(t, req{method: "POST", path: "/v1/webhook-endpoints", key: tok, body: `{"url":"https://8.8.8.8/hooks","events":["contact.created"]}`})
	if ep.Status != 201 {
		t.Fatalf("endpoint: %d %s", ep.Status, ep.Raw)
	}
	id2, _ := age.GenerateX25519Identity()
	before := a.do(t, req{method: "GET", path: "/v1/customers/" + id, key: a.key}).Body["version"]

	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/export", key: a.key, body: `{"recipient":"age1nope"}`}).field(t, "recipient")

	hr, _ := http.NewRequest("POST", a.srv.URL+"/v1/customers/"+id+"/export", strings.NewReader(`{"recipient":"`+id2.Recipient().String()+`"}`))
	hr.Header.Set("Authorization", "Bearer "+a.key)
	hr.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/age" || bytes.Contains(sealed, []byte("p7@example.com")) {
		t.Fatalf("export: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// The master identity cannot read it.
	keyFile, err := os.Open(a.masterFile)
	if err != nil {
		t.Fatal(err)
	}
	masterIDs, err := age.ParseIdentities(keyFile)
	keyFile.Close()
	if err != nil || len(masterIDs) == 0 {
		t.Fatalf("master identities: %v", err)
	}
	if _, err := age.Decrypt(bytes.NewReader(sealed), masterIDs...); err == nil {
		t.Fatal("the master identity decrypts the export")
	}
	plain, err := age.Decrypt(bytes.NewReader(sealed), id2)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	emails := map[string]bool{}
	sc := bufio.NewScanner(plain)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		kinds[line["kind"].(string)]++
		if line["kind"] == "contact" {
			emails[line["email"].(string)] = true
		}
		if line["kind"] == "webhook_endpoint" && (line["id"] != ep.Body["id"] || line["secret"] != nil || strings.Contains(sc.Text(), "whsec_")) {
			t.Fatalf("endpoint line %v", line)
		}
		if line["kind"] == "customer" && line["id"] != id {
			t.Fatalf("customer line %v", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("the decrypted stream: %v", err)
	}
	if kinds["customer"] != 1 || kinds["contact"] != 30 || len(emails) != 30 || kinds["timeline"] != 30 || kinds["event"] != 2 || kinds["webhook_endpoint"] != 1 {
		t.Fatalf("export holds %v", kinds)
	}
	ev := a.do(t, req{method: "GET", path: "/v1/customers/" + id + "/events", key: a.key})
	evs := ev.Body["items"].([]any)
	last := evs[len(evs)-1].(map[string]any)
	if last["type"] != "customer.exported" || last["version"] != before || last["data"].(map[string]any)["recipient"] != id2.Recipient().String() {
		t.Fatalf("the export event: %s", ev.Raw)
	}
	if v := a.do(t, req{method: "GET", path: "/v1/customers/" + id, key: a.key}).Body["version"]; v != before {
		t.Fatalf("an export changed the version: %v → %v", before, v)
	}
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/terminate", key: a.key, body: `{"retention":{"strategy":"NO_RETENTION"}}`})
	a.do(t, req{method: "POST", path: "/v1/customers/" + id + "/export", key: a.key, body: `{"recipient":"` + id2.Recipient().String() + `"}`}).problem(t, 410, "data_shredded")
}
