package tenants

import (
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard/switchboard/crypto"
)

// TestContactInfoStoredFormat opens a value sealed by the first format (the
// untagged domain struct as JSON) and checks that today's code reads every
// field back: the stored names are fixed in storedContactInfo, so renaming
// a field of ContactInfo cannot turn stored values into nulls.
func TestContactInfoStoredFormat(t *testing.T) {
	const id = "0193a0c4-0000-7000-8000-00000000c0de"
	key := make([]byte, crypto.KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	c, err := crypto.NewCipher(id, "golden", key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/contactinfo-v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := openContactInfo(c, id, sealed)
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) *string { return &v }
	want := ContactInfo{BusinessName: "Corner Bakery Inc.", PhoneNumber: s("+14165550100"), AddressLine1: "1 King St W",
		AddressLine2: s("Suite 2"), PostalCode: "M5H 1A1", Province: s("ON"), Country: "CA"}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("opened %+v, want %+v", *got, want)
	}
	// And what is written today opens to the same.
	again, err := sealContactInfo(c, id, want)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := openContactInfo(c, id, again); err != nil || !reflect.DeepEqual(*back, want) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}
