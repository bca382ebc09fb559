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
// a string _id range (backends.GetIDRange) into SQL on the _id value index.
//
// The _id_ index is on the JSON text of _id (metadata.IDColumn,
// `_ferretdb_sjson->"_id"`), Go's json.Marshal output: a string s is `"` +
// E(s) + `"`, where E escapes `"`, `\`, control characters, `<`, `>`, `&`,
// U+2028 and U+2029. That text does not sort as the strings do (MongoDB's
// binary order): every escape starts with `\` (0x5C), so "a\u0001" sorts
// after "aA", and the closing `"` sorts above a space or `!`, so "a b" sorts
// before "a". An ORDER BY on it, or tight bounds on it, would need every _id
// in the range checked first.
//
// So every table also has an index on the SQL value of _id
// (metadata.IDValueColumn, `_ferretdb_sjson->>'$._id'`, made with the table
// or when its database is first opened): for a string, the string itself,
// which SQLite compares with BINARY, memcmp of the UTF-8 bytes, exactly
// MongoDB's order for strings (Go's string comparison too). Non-strings get
// other SQL types, which SQLite orders before every TEXT (NULL, numbers) or
// after it (BLOB): a bound `>= ''` keeps them out of a range with no lower
// bound. ObjectIDs (hex) and binData (base64) are JSON strings too, so TEXT
// here as well; the schema type `$s.p._id.t` tells them apart. The WHERE
// clause therefore selects exactly the documents the range matches, from
// the value index, and ORDER BY the value returns them in MongoDB's order,
// from the same index, stopping at the limit.

import (
	"fmt"
	"strings"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// idType is the sjson schema type of _id.
const idType = metadata.DefaultColumn + `->>'$."$s".p._id.t'`

// jsonString returns the JSON text sjson stores for the string s.
func jsonString(s string) string {
	return string(must.NotFail(sjson.MarshalSingleValue(s)))
}

// idRangeWhere returns a WHERE clause (with args) that selects exactly the
// documents whose _id is a string in r, from the _id_ index for an exact
// _id and from the value index for a range.
func idRangeWhere(r *backends.IDRange) (string, []any) {
	if r.In != nil {
		// One _id_ index lookup each (the JSON text is one-to-one).
		args := make([]any, len(r.In))
		for i, s := range r.In {
			args[i] = jsonString(s)
		}

		marks := strings.TrimSuffix(strings.Repeat("?, ", len(r.In)), ", ")

		return fmt.Sprintf(` WHERE %s IN (%s) AND %s = 'string'`, metadata.IDColumn, marks, idType), args
	}

	if eq, ok := r.Eq(); ok {
		// The JSON text is one-to-one: exact on the _id_ index.
		return fmt.Sprintf(` WHERE %s = ? AND %s = 'string'`, metadata.IDColumn, idType), []any{jsonString(eq)}
	}

	var conds []string
	var args []any

	if r.Lower != nil {
		op := ">"
		if r.LowerIncl {
			op = ">="
		}

		conds = append(conds, metadata.IDValueColumn+" "+op+" ?")
		args = append(args, *r.Lower)
	} else {
		conds = append(conds, metadata.IDValueColumn+" >= ''")
	}

	if r.Upper != nil {
		op := "<"
		if r.UpperIncl {
			op = "<="
		}

		conds = append(conds, metadata.IDValueColumn+" "+op+" ?")
		args = append(args, *r.Upper)
	}

	conds = append(conds, idType+" = 'string'")

	return " WHERE " + strings.Join(conds, " AND "), args
}

// idOrderBy returns the ORDER BY clause for the direction dir (1 or -1) on
// the value index.
func idOrderBy(dir int64) string {
	if dir < 0 {
		return " ORDER BY " + metadata.IDValueColumn + " DESC"
	}

	return " ORDER BY " + metadata.IDValueColumn
}
