package store_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store/storetest"
)

// TestScrubKeysLeavesNoTrace: a document deleted from the keyring database
// leaves no byte of itself in any file under the data dir once ScrubKeys
// ran (secure_delete zeroes it in the database file; the scrub empties the
// write-ahead log). Without the scrub the log still holds it.
func TestScrubKeysLeavesNoTrace(t *testing.T) {
	db := storetest.MustOpen(t)
	ctx := t.Context()
	if db.DataDir() == "" {
		t.Fatal("the test engine has no data dir")
	}
	coll := db.Keys.Collection("customer_keys")
	markers := make([][]byte, 20)
	for i := range markers {
		markers[i] = make([]byte, 48)
		rand.Read(markers[i])
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "wrapped", Value: markers[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.ScrubKeys(ctx); err != nil { // the inserts reach the database file
		t.Fatal(err)
	}
	for i := range markers {
		if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	if found := filesHolding(t, db.DataDir(), markers); len(found) == 0 {
		t.Fatal("before the scrub no file holds the deleted values: the test proves nothing")
	}
	if err := db.ScrubKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if found := filesHolding(t, db.DataDir(), markers); len(found) > 0 {
		t.Fatalf("deleted values still in %v", found)
	}
}

func filesHolding(t *testing.T, dir string, markers [][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a socket
		}
		for _, m := range markers {
			// The engine stores binary values as base64 text.
			if bytes.Contains(b, m) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(m))) {
				found = append(found, filepath.Base(path))
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}
