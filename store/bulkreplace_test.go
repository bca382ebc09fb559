package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/store/storetest"
)

// TestBulkReplaceOfManyDocuments needs the second FerretDB patch
// (third_party/README.md): one update command of 150 replaces by _id.
// Unpatched, each statement keeps its query (a SQLite connection) open to
// the end of the command, so past the pool's 100 connections the command
// waits for itself and never answers.
func TestBulkReplaceOfManyDocuments(t *testing.T) {
	db := storetest.MustOpen(t)
	coll := db.Control.Collection("bulk")
	const n = 150
	docs := make([]any, n)
	for i := range n {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}, {Key: "v", Value: 1}}
	}
	if _, err := coll.InsertMany(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	models := make([]mongo.WriteModel, n)
	for i := range n {
		models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}}).
			SetReplacement(bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}, {Key: "v", Value: 2}})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err != nil {
		t.Fatalf("bulk replace of %d documents: %v", n, err)
	}
	if res.ModifiedCount != n {
		t.Fatalf("modified %d of %d", res.ModifiedCount, n)
	}
}
