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

// Package metadata provides access to databases and collections information.
package metadata

import (
	"fmt"

	"github.com/FerretDB/FerretDB/internal/backends"
)

// Collection will probably have a method for getting column name / SQLite path expression for the given document field
// once we implement field extraction.
// IDColumn probably should go away.
// TODO https://github.com/FerretDB/FerretDB/issues/226

const (
	// DefaultColumn is a column name for all fields.
	DefaultColumn = backends.ReservedPrefix + "sjson"

	// IDColumn is a SQLite path expression for _id field.
	//
	// It must be byte-for-byte the expression the _id_ index is created on
	// (Registry.indexesCreate builds `DefaultColumn->"field"`): SQLite matches
	// indexes on expressions syntactically, so the equivalent `->'$._id'`
	// would never use the index and every find/update/delete by _id would
	// scan the whole table.
	IDColumn = DefaultColumn + `->"_id"`

	// IDValueColumn is the SQL value of _id (Switchboard patch, see
	// third_party/README.md): for a string, the string itself, which
	// SQLite compares with BINARY (memcmp), MongoDB's binary order. Every
	// table has an index on it (IDValueIndexSQL), so that string _id ranges
	// are read from an index in the right order.
	IDValueColumn = DefaultColumn + `->>'$._id'`

	// RecordIDColumn is a name for RecordID column to store capped collection record id.
	RecordIDColumn = backends.ReservedPrefix + "record_id"
)

// Collection represents collection metadata.
//
// Collection value should be immutable to avoid data races.
// Use [deepCopy] to replace the whole value instead of modifying fields of existing value.
type Collection struct {
	Name      string
	TableName string
	Settings  Settings
}

// Capped returns true if collection is capped.
func (c Collection) Capped() bool {
	return c.Settings.CappedSize > 0
}

// deepCopy returns a deep copy.
func (c *Collection) deepCopy() *Collection {
	if c == nil {
		return nil
	}

	return &Collection{
		Name:      c.Name,
		TableName: c.TableName,
		Settings:  c.Settings.deepCopy(),
	}
}

// IDValueIndexSQL creates the index on IDValueColumn of a table, if it has
// none (Switchboard patch, see third_party/README.md). It is not in the
// collection's metadata: clients never see it, and it goes with the table.
func IDValueIndexSQL(tableName string) string {
	return fmt.Sprintf("CREATE INDEX IF NOT EXISTS %q ON %q (%s)", tableName+"_id_value", tableName, IDValueColumn)
}
