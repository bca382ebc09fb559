package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/switchboard/switchboard/store"
	"github.com/switchboard/switchboard/store/storetest"
)

// TestFilesDoNotGrowWithCustomers: on the embedded engine the files under
// the data dir are the same set after 10 customers wrote data as after
// 1,000 did: customers share the cells created at the first start.
func TestFilesDoNotGrowWithCustomers(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(t.Context(), store.Config{DataDir: dir, Logger: storetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	files := func() []string {
		var out []string
		err := filepath.WalkDir(filepath.Join(dir, "db"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				out = append(out, filepath.Base(p))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			tn := db.Tenant(fmt.Sprintf("0190a1b2-0000-7000-8000-%012d", i))
			for _, c := range []string{"contacts", "indexes"} {
				if err := tn.Collection(c).InsertOne(t.Context(), bson.D{{Key: "_id", Value: "x"}}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write(0, 10)
	at10 := files()
	write(10, 1000)
	at1000 := files()
	if fmt.Sprint(at10) != fmt.Sprint(at1000) {
		t.Fatalf("files after 10 customers:\n%v\nafter 1,000:\n%v", at10, at1000)
	}
	if len(at10) < store.DefaultCells {
		t.Fatalf("%d files: the cells were not created up front", len(at10))
	}
}
