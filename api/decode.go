package api

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/switchboard/switchboard/tenants"
)

// readBody reads the whole request body (limited to maxBody: 413 past it)
// and leaves a fresh reader over the same bytes for what follows.
func readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errPayloadTooLarge
		}
		return nil, err
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// decodeJSON reads the request body into dst strictly: malformed JSON,
// duplicate names, unknown members and values of the wrong JSON type
// (a fraction or a string where an integer belongs) are a 400 naming the
// field. null counts as absent. Rules about well-typed values are the
// service's (422).
func decodeJSON(c *gin.Context, dst any) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errPayloadTooLarge
		}
		return badRequest("", "")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("", "")
	}
	err = json.Unmarshal(body, dst, json.RejectUnknownMembers(true))
	if err == nil {
		return nil
	}
	var se *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &se):
		field := fieldPath(se.JSONPointer)
		msg := "has the wrong JSON type"
		switch {
		case errors.Is(err, json.ErrUnknownName):
			msg = "is not a known field"
		case se.GoType != nil && strings.Contains(se.GoType.String(), "int"):
			msg = "must be an integer"
		case se.GoType != nil && strings.Contains(se.GoType.String(), "string"):
			msg = "must be a string"
		case se.Err != nil && strings.Contains(se.Err.Error(), "expectedVersion"):
			msg = se.Err.Error()
		}
		if field == "" {
			return badRequest("", "")
		}
		return badRequest(field, msg)
	case errors.As(err, &syn):
		if errors.Is(err, jsontext.ErrDuplicateName) {
			return badRequest(fieldPath(syn.JSONPointer), "appears more than once")
		}
		if f := fieldPath(syn.JSONPointer); f != "" {
			return badRequest(f, "is not valid JSON")
		}
		return badRequest("", "")
	default:
		return badRequest("", "")
	}
}

// fieldPath turns a JSON pointer into the field notation of API.md:
// /retention/period → retention.period, /data/3/email → data[3].email.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// expectedVersion is the expectedVersion member of a mutation: an integer
// version or "any". Absent means any.
type expectedVersion struct {
	value    int64
	any, set bool
}

// UnmarshalJSON accepts an integer or the string "any"; null is refused
// (leave the member out to mean "any").
func (v *expectedVersion) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return errors.New(`expectedVersion must be an integer or "any", not null`)
	}
	if string(b) == `"any"` {
		*v = expectedVersion{any: true, set: true}
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errors.New(`expectedVersion must be an integer or "any"`)
	}
	*v = expectedVersion{value: n, set: true}
	return nil
}

// get returns the version to check, or a validation error for a version no
// resource can have.
func (v expectedVersion) get() (int64, error) {
	if !v.set || v.any {
		return tenants.AnyVersion, nil
	}
	if v.value < 1 {
		return 0, invalidQuery("expectedVersion", `must be a version (1 or more) or "any"`)
	}
	return v.value, nil
}

// mutation is a request body that carries an expectedVersion.
type mutation interface{ expected() expectedVersion }

// decodeMutation reads a mutation's body strictly and returns its expected
// version; on a bad body it answers the problem itself and reports false.
func decodeMutation(c *gin.Context, req mutation) (int64, bool) {
	if err := decodeJSON(c, req); err != nil {
		writeProblem(c, err)
		return 0, false
	}
	v, err := req.expected().get()
	if err != nil {
		writeProblem(c, err)
		return 0, false
	}
	return v, true
}

// query refuses a query parameter the route does not know, or one given
// twice (400 naming it, before anything happens): a typo such as
// ?anonymise=true must never be read as "not set".
func query(known ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		params := c.Request.URL.Query()
		names := make([]string, 0, len(params))
		for name := range params {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			switch {
			case !slices.Contains(known, name):
				writeProblem(c, badQuery(name, "is not a query parameter of this route"))
				return
			case len(params[name]) > 1:
				writeProblem(c, badQuery(name, "is given more than once"))
				return
			}
		}
		c.Next()
	}
}

// limitParam parses ?limit= (1..200, default 50).
func limitParam(c *gin.Context) (int, error) {
	s, ok := c.GetQuery("limit")
	if !ok {
		return 50, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 200 {
		return 0, invalidQuery("limit", "must be an integer from 1 to 200")
	}
	return n, nil
}

// jsonWrite writes v as JSON (the standard encoder: our wire structs are
// plain).
func jsonWrite(w io.Writer, v any) error {
	enc := stdjson.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
