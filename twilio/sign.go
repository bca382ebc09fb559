package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"sort"
)

// Sign returns the X-Twilio-Signature Twilio sends with a callback to url
// carrying the form params, signed with authToken: HMAC-SHA1 keyed with the
// token over url exactly as given (query string included) followed by each
// parameter's name and value, names in byte order, base64 (standard
// alphabet, padded). ValidSignature accepts what it returns.
func Sign(authToken, url string, params map[string]string) string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(url)) // a hash.Hash never fails to write
	for _, k := range names {
		m.Write([]byte(k))
		m.Write([]byte(params[k]))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
