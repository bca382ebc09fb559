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

package backends

// Switchboard patch (see third_party/README.md): this file is new.

import (
	"unicode/utf8"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// IDRange is a range of string _id values taken from a filter:
// the documents whose _id is a string s with Lower <= s (or Lower < s)
// and s <= Upper (or s < Upper), in binary (UTF-8 byte) order.
// Non-string _ids never match (MongoDB's type bracketing).
type IDRange struct {
	Lower, Upper         *string // nil: unbounded
	LowerIncl, UpperIncl bool

	// In, when set, is instead the set of an `{_id: {$in: [...]}}` of
	// strings (at most MaxIDIn): the documents whose _id is one of them.
	In []string
}

// MaxIDIn is the largest $in of string _ids pushed down.
const MaxIDIn = 1000

// Eq returns the value of an equality range (Lower == Upper, both inclusive).
func (r *IDRange) Eq() (string, bool) {
	if r.In != nil || r.Lower == nil || r.Upper == nil || !r.LowerIncl || !r.UpperIncl || *r.Lower != *r.Upper {
		return "", false
	}

	return *r.Lower, true
}

// GetIDRange returns the string _id range of filter's top-level _id condition,
// if it is one the backend may push down: `{_id: <string>}`, or `{_id: {...}}`
// with only the operators $eq, $gt, $gte, $lt, $lte, all with (valid UTF-8)
// string values, $eq alone, at most one lower and one upper bound.
//
// The other keys of filter, if any, are not looked at; whole reports whether
// there are none, so that the range is the whole filter.
func GetIDRange(filter *types.Document) (r *IDRange, whole bool) {
	if filter == nil {
		return nil, false
	}

	v, err := filter.Get("_id")
	if err != nil {
		return nil, false
	}

	whole = filter.Len() == 1

	str := func(v any) (*string, bool) {
		s, ok := v.(string)
		if !ok || !utf8.ValidString(s) {
			return nil, false
		}

		return &s, true
	}

	switch v := v.(type) {
	case string:
		s, ok := str(v)
		if !ok {
			return nil, false
		}

		return &IDRange{Lower: s, Upper: s, LowerIncl: true, UpperIncl: true}, whole

	case *types.Document:
		if v.Len() == 0 {
			return nil, false
		}

		if v.Len() == 1 && v.Keys()[0] == "$in" {
			arr, ok := must.NotFail(v.Get("$in")).(*types.Array)
			if !ok || arr.Len() == 0 || arr.Len() > MaxIDIn {
				return nil, false
			}

			in := make([]string, arr.Len())
			for i := range in {
				s, ok := str(must.NotFail(arr.Get(i)))
				if !ok {
					return nil, false
				}

				in[i] = *s
			}

			return &IDRange{In: in}, whole
		}

		r = new(IDRange)

		for _, op := range v.Keys() {
			s, ok := str(must.NotFail(v.Get(op)))
			if !ok {
				return nil, false
			}

			switch op {
			case "$eq":
				if v.Len() != 1 {
					return nil, false
				}

				r.Lower, r.Upper, r.LowerIncl, r.UpperIncl = s, s, true, true

			case "$gt", "$gte":
				if r.Lower != nil {
					return nil, false
				}

				r.Lower, r.LowerIncl = s, op == "$gte"

			case "$lt", "$lte":
				if r.Upper != nil {
					return nil, false
				}

				r.Upper, r.UpperIncl = s, op == "$lte"

			default:
				return nil, false
			}
		}

		return r, whole
	}

	return nil, false
}

// IDSort returns the direction (1 or -1) of a sort document `{_id: 1}` or `{_id: -1}`.
func IDSort(sort *types.Document) (int64, bool) {
	if sort.Len() != 1 || sort.Keys()[0] != "_id" {
		return 0, false
	}

	var dir int64

	switch v := sort.Values()[0].(type) {
	case int64:
		dir = v
	case int32:
		dir = int64(v)
	case float64:
		dir = int64(v)
	default:
		return 0, false
	}

	if dir != 1 && dir != -1 {
		return 0, false
	}

	return dir, true
}
