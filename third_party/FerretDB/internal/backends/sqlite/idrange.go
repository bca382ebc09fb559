// Copyright 2021 FerretDB Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package sqlite

// Switchboard patch (see third_party/README.md): this file is new. It turns
// a string _id range (backends.GetIDRange) into SQL on the _id_ index
// expression metadata.IDColumn, `_ferretdb_sjson->"_id"`.
//
// What that expression compares. `->` returns the JSON text of the _id
// exactly as sjson stored it: Go's json.Marshal output, so a string s is
// J(s) = `"` + E(s) + `"`, where E escapes `"` and `\` (\" \\), control
// characters (\n, \t, ..., \u0000), `<`, `>`, `&` (\u003c, \u003e, \u0026),
// U+2028 and U+2029 (\u2028, \u2029), and keeps every other character as its
// UTF-8 bytes. SQLite compares these texts with memcmp (BINARY). Other JSON
// values start with another byte: numbers with `-` or a digit, objects `{`,
// true/false/null with a letter, so the strings are exactly the texts in
// ['"', '#'). ObjectIDs (hex) and binData (base64) are JSON strings too; the
// schema column `$s.p._id.t` tells them apart.
//
// J does not keep the binary order of strings (MongoDB's): every escape
// starts with `\` (0x5C), so "a\"" (0x22) sorts after "a#" (0x23), "a\u0001"
// after "aA", "a\u2028" before "ab"; and the closing `"` (0x22) sorts after
// a space or `!`, so "a b" and "a!" sort before "a". J does keep it for
// "plain" strings, those with no escaped character and no space or `!`
// (every byte >= 0x23, J(s) = `"`+s+`"`): a proper prefix ends with `"`, which
// is below every byte of a plain string, and otherwise the first differing
// byte decides in both. Switchboard's _ids (letters, digits, - _ / : # + . = ~)
// are plain.
//
// Hence:
//
//   - idSuperset gives bounds [lo, hi) of J that contain J(s) for every
//     string s in the range, plain or not (proofs below). With an exact
//     residual condition on the SQL value of the _id (`->>`, compared with
//     BINARY = byte order, and the schema type) the WHERE clause selects
//     exactly the documents the range matches.
//   - ORDER BY the index expression is the right order only if every string
//     in those bounds is plain. The sorted query checks that in the same
//     statement (NOT EXISTS a non-plain string in the superset bounds: one
//     pass over that part of the index) and then also uses the tight bounds
//     J(lower), J(upper) when the bounds are plain. If the check fails the
//     statement returns no rows, and Query runs the unsorted-by-index form,
//     ordered by the SQL value instead (a temporary B-tree).

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

const (
	// idText is the SQL value of _id (for a string: the string itself).
	idText = metadata.DefaultColumn + `->>'$._id'`

	// idType is the sjson schema type of _id.
	idType = metadata.DefaultColumn + `->>'$."$s".p._id.t'`

	// idNotPlain is true for a JSON text with an escape, a space or `!`.
	idNotPlain = `(instr(` + metadata.IDColumn + `, '\') > 0 OR instr(` + metadata.IDColumn + `, ' ') > 0 OR instr(` +
		metadata.IDColumn + `, '!') > 0)`
)

// jsonString returns J(s), the JSON text sjson stores for the string s.
func jsonString(s string) string {
	return string(must.NotFail(sjson.MarshalSingleValue(s)))
}

// isPlain reports whether J(s) = `"`+s+`"` with every byte of s >= 0x23.
func isPlain(s string) bool {
	return jsonString(s) == `"`+s+`"` && !strings.ContainsAny(s, " !")
}

// succ returns the smallest string greater than every string starting with p.
func succ(p string) string {
	b := []byte(p)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}

	must.BeTrue(len(b) > 0)
	b[len(b)-1]++

	return string(b)
}

// prefixWhile returns the longest prefix of s whose runes all satisfy f.
func prefixWhile(s string, f func(rune) bool) string {
	for i, r := range s {
		if !f(r) {
			return s[:i]
		}
	}

	return s
}

// lowerSafe: raw (unescaped) and below `\`. For such a character c every
// character d > c encodes to bytes greater than c: raw d by UTF-8 order, an
// escaped d as `\`...
func lowerSafe(r rune) bool {
	return r >= 0x20 && r <= 0x5b && r != '"' && r != '&' && r != '<' && r != '>'
}

// upperSafe: raw and above `\`. For such a character c every character d < c
// encodes to bytes smaller than c (an escaped d starts with `\`), and the
// closing `"` of a shorter string is smaller too.
func upperSafe(r rune) bool {
	return r >= 0x5d && r != 0x2028 && r != 0x2029
}

// idSuperset returns bounds lo <= J(s) < hi for every string s in r.
//
//   - Both bounds: every s in r starts with their common prefix C (rune-wise),
//     and E encodes rune by rune, so J(s) starts with `"`+E(C).
//   - Lower bound L: with P its longest lowerSafe prefix, J(s) >= `"`+P for
//     every s >= L: if s starts with P, J(s) does with `"`+P; otherwise s and P
//     first differ at a character with s's greater, and by lowerSafe its
//     encoding is greater bytes.
//   - Upper bound U: with Q its longest upperSafe prefix, J(s) < succ(`"`+Q)
//     for every s <= U: if s starts with Q, J(s) does with `"`+Q; if s is a
//     proper prefix of Q, its closing `"` is below the next character of Q;
//     otherwise s is smaller at the first difference, and by upperSafe its
//     encoding is smaller bytes.
func idSuperset(r *backends.IDRange) (lo, hi string) {
	lo, hi = `"`, `#`

	if r.Lower != nil && r.Upper != nil {
		l, u := *r.Lower, *r.Upper
		n := 0

		for n < len(l) && n < len(u) {
			rl, sl := utf8.DecodeRuneInString(l[n:])
			ru, _ := utf8.DecodeRuneInString(u[n:])

			if rl != ru {
				break
			}

			n += sl
		}

		p := strings.TrimSuffix(jsonString(l[:n]), `"`)
		lo, hi = max(lo, p), min(hi, succ(p))
	}

	if r.Lower != nil {
		lo = max(lo, `"`+prefixWhile(*r.Lower, lowerSafe))
	}

	if r.Upper != nil {
		hi = min(hi, succ(`"`+prefixWhile(*r.Upper, upperSafe)))
	}

	return lo, hi
}

// idRangeWhere returns a WHERE clause (with args) that selects exactly the
// documents whose _id is a string in r.
//
// If checked is true, the clause also requires that every string _id in the
// superset bounds is plain (else it selects nothing), and in return uses the
// tight bounds for plain range bounds, so that the rows come in index order
// = binary order of the _ids (see the comment at the top of this file).
func idRangeWhere(table string, r *backends.IDRange, checked bool) (string, []any) {
	if eq, ok := r.Eq(); ok {
		// J is one-to-one: exact without the residual value check.
		return fmt.Sprintf(` WHERE %s = ? AND %s = 'string'`, metadata.IDColumn, idType), []any{jsonString(eq)}
	}

	lo, hi := idSuperset(r)

	var conds []string
	var args []any

	loOp, lo2 := ">=", lo
	if checked && r.Lower != nil && isPlain(*r.Lower) {
		loOp, lo2 = ">", jsonString(*r.Lower)
		if r.LowerIncl {
			loOp = ">="
		}
	}

	hiOp, hi2 := "<", hi
	if checked && r.Upper != nil && isPlain(*r.Upper) {
		hiOp, hi2 = "<", jsonString(*r.Upper)
		if r.UpperIncl {
			hiOp = "<="
		}
	}

	conds = append(conds, metadata.IDColumn+" "+loOp+" ?", metadata.IDColumn+" "+hiOp+" ?")
	args = append(args, lo2, hi2)

	conds = append(conds, idType+" = 'string'")

	if r.Lower != nil {
		op := ">"
		if r.LowerIncl {
			op = ">="
		}

		conds = append(conds, idText+" "+op+" ?")
		args = append(args, *r.Lower)
	}

	if r.Upper != nil {
		op := "<"
		if r.UpperIncl {
			op = "<="
		}

		conds = append(conds, idText+" "+op+" ?")
		args = append(args, *r.Upper)
	}

	if checked {
		conds = append(conds, fmt.Sprintf(
			`NOT EXISTS (SELECT 1 FROM %q WHERE %s >= ? AND %s < ? AND %s)`,
			table, metadata.IDColumn, metadata.IDColumn, idNotPlain,
		))
		args = append(args, lo, hi)
	}

	return " WHERE " + strings.Join(conds, " AND "), args
}

// idOrderBy returns the ORDER BY clause for the direction dir (1 or -1):
// on the index expression (byIndex) or on the SQL value of _id.
func idOrderBy(dir int64, byIndex bool) string {
	col := idText
	if byIndex {
		col = metadata.IDColumn
	}

	if dir < 0 {
		return " ORDER BY " + col + " DESC"
	}

	return " ORDER BY " + col
}
