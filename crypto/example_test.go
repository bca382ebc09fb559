package crypto_test

import (
	"bytes"
	"fmt"

	"github.com/switchboard/switchboard/crypto"
)

// A customer's cipher seals a field under associated data that names where
// the value lives; it opens only there, for that customer.
func ExampleCipher_Seal() {
	key := bytes.Repeat([]byte{42}, crypto.KeySize) // in production: the Keyring's unwrapped customer key
	c, err := crypto.NewCipher("0193a0c4-1111-7000-8000-000000000001", "k1", key)
	if err != nil {
		panic(err)
	}
	email := crypto.Field{Collection: "contacts", DocumentID: "c-1", Name: "email"}
	sealed, err := c.Seal(email, []byte("ann@example.com"))
	if err != nil {
		panic(err)
	}
	plain, err := c.Open(email, sealed)
	fmt.Println(string(plain), err)

	_, err = c.Open(crypto.Field{Collection: "contacts", DocumentID: "c-2", Name: "email"}, sealed)
	fmt.Println(err)

	fmt.Println(len(c.BlindIndex("email", "ann@example.com")))
	// Output:
	// ann@example.com <nil>
	// crypto: decryption failed
	// 32
}
