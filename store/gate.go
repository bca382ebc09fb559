package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// gateDoc holds off other side-effecting changes of one version.
type gateDoc struct {
	ID string    `bson:"_id"`
	At time.Time `bson:"at"`
}

// takeGate takes the gate of version n of id. ErrBusy while another change
// of that version runs; ErrConflict when version n is claimed already.
func (v *Versioned[T, E]) takeGate(ctx context.Context, id string, n int64) (string, error) {
	gid := ClaimID(id, n)
	err := v.Gates.InsertOne(ctx, gateDoc{ID: gid, At: v.now()})
	if err == nil {
		return gid, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return "", fmt.Errorf("gate %s: %w", gid, err)
	}
	if _, cerr := v.Claim(ctx, id, n); cerr == nil {
		return "", ErrConflict
	} else if !errors.Is(cerr, ErrNotFound) {
		return "", cerr
	}
	var g gateDoc
	err = v.Gates.FindID(ctx, gid).Decode(&g)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", ErrBusy // given back just now: try again
	}
	if err != nil {
		return "", fmt.Errorf("gate %s: %w", gid, err)
	}
	if v.now().Sub(g.At) < GateTTL {
		return "", ErrBusy
	}
	// The holder died before claiming: go ahead without the gate (the
	// claim still decides; side effects are safe to repeat).
	return "", nil
}

// releaseGate gives back a gate whose change did not claim its version. Only
// its taker ever writes a gate, so deleting it by _id is safe.
func (v *Versioned[T, E]) releaseGate(ctx context.Context, gid string) {
	if gid == "" {
		return
	}
	_, _ = v.Gates.DeleteID(context.WithoutCancel(ctx), gid)
}
