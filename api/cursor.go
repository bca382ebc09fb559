package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/gin-gonic/gin"
)

// cursors authenticates list cursors: the domain's cursor travels with a
// MAC over it, the caller and the path it was issued for, so a forged
// cursor, or one issued to another caller or for another list, is refused
// (422) before it reaches a query.
type cursors struct{ key []byte }

// caller names who a cursor is issued to: the partner, or the customer
// whose app holds the token.
func caller(c *gin.Context) string {
	if _, ok := c.Get(partnerKey); ok {
		return "partner:" + partner(c).ID
	}
	return "tenant:" + tenantClaims(c).CustomerID
}

func (cs cursors) mac(c *gin.Context, raw string) []byte {
	m := hmac.New(sha256.New, cs.key)
	for _, part := range []string{caller(c), c.Request.URL.Path, raw} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:16]
}

// seal makes the cursor a client sees of the domain's next cursor raw
// ("" stays "": no next page).
func (cs cursors) seal(c *gin.Context, raw string) string {
	if raw == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(raw)) + "." + base64.RawURLEncoding.EncodeToString(cs.mac(c, raw))
}

// open returns the domain's cursor of the request's ?cursor= ("" for the
// first page), or a 422 naming cursor.
func (cs cursors) open(c *gin.Context) (string, error) {
	sealed := c.Query("cursor")
	if sealed == "" {
		return "", nil
	}
	bad := invalidQuery("cursor", "is not a cursor this list returned to this caller")
	rawPart, macPart, ok := strings.Cut(sealed, ".")
	raw, err1 := base64.RawURLEncoding.DecodeString(rawPart)
	mac, err2 := base64.RawURLEncoding.DecodeString(macPart)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, cs.mac(c, string(raw))) {
		return "", bad
	}
	return string(raw), nil
}

// page reads a list's ?limit= and ?cursor= (the cursor opened); on a bad
// one it has answered with the problem and ok is false.
func (cs cursors) page(c *gin.Context) (limit int, cursor string, ok bool) {
	limit, err := limitParam(c)
	if err == nil {
		cursor, err = cs.open(c)
	}
	if err != nil {
		writeProblem(c, err)
		return 0, "", false
	}
	return limit, cursor, true
}
