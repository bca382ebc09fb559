package switchboard

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// A list cursor is opaque to clients: the sort key of the last item of a
// page, its parts joined by "|", base64url without padding.

// EncodeCursor makes the cursor of a page that ended at an item with the
// given sort key parts. No part may contain "|".
func EncodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

// DecodeCursor returns the n sort key parts of a cursor EncodeCursor made,
// or a ValidationError naming the cursor query parameter.
func DecodeCursor(cursor string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	parts := strings.Split(string(b), "|")
	if err != nil || len(b) == 0 || !utf8.Valid(b) || len(parts) != n {
		return nil, Invalid("cursor", "is not a cursor this list returned")
	}
	for _, p := range parts {
		if p == "" {
			return nil, Invalid("cursor", "is not a cursor this list returned")
		}
	}
	return parts, nil
}
