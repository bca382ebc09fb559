package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// GenID is the _id of generation g of the chain name.
func GenID(name string, g int64) string { return name + "#" + strconv.FormatInt(g, 10) }

// Gen is one generation of a chain.
type Gen[T any] struct {
	ID   string `bson:"_id"` // GenID(Name, N)
	Name string `bson:"name"`
	N    int64  `bson:"gen"`
	Body T      `bson:"body"`
}

// Chain keeps claims that can be taken over: a lease, an Idempotency-Key,
// a unique value. Each is a chain of generations "<name>#1", "<name>#2", …;
// the newest one that exists is the current one.
//
// Invariants:
//
//   - A generation is taken by inserting it (a claim): of racing takers,
//     exactly one gets generation n+1. Taking over a dead, expired or
//     released generation is taking the next one, never a conditional
//     update of the old one.
//   - Only the taker of a generation ever writes it again (Put, by exact
//     _id), so its writes need no condition.
//   - Generations are never deleted one by one (a gap would let a walker
//     stop short and claim a generation below the current one); DeleteAll
//     removes a whole chain, newest first.
//
// Finding the current generation walks from the first, one read by _id a
// step; chains stay short (one generation per take-over).
type Chain[T any] struct {
	Coll *Coll
}

// Head returns the newest generation of name, or ErrNotFound when the
// chain is empty.
func (c Chain[T]) Head(ctx context.Context, name string) (*Gen[T], error) {
	var head *Gen[T]
	for n := int64(1); ; n++ {
		g, err := c.Get(ctx, name, n)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		head = g
	}
	if head == nil {
		return nil, ErrNotFound
	}
	return head, nil
}

// Get reads generation n of name, or ErrNotFound.
func (c Chain[T]) Get(ctx context.Context, name string, n int64) (*Gen[T], error) {
	var g Gen[T]
	err := c.Coll.FindID(ctx, GenID(name, n)).Decode(&g)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", GenID(name, n), err)
	}
	return &g, nil
}

// Take inserts generation n of name, or returns ErrExists when another
// taker got it first.
func (c Chain[T]) Take(ctx context.Context, name string, n int64, body T) (*Gen[T], error) {
	g := &Gen[T]{ID: GenID(name, n), Name: name, N: n, Body: body}
	if err := c.Coll.InsertOne(ctx, g); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return nil, ErrExists
		}
		return nil, fmt.Errorf("take %s: %w", g.ID, err)
	}
	return g, nil
}

// Put rewrites a generation its caller took.
func (c Chain[T]) Put(ctx context.Context, g *Gen[T]) error {
	if _, err := c.Coll.ReplaceID(ctx, g.ID, g); err != nil {
		return fmt.Errorf("write %s: %w", g.ID, err)
	}
	return nil
}

// DeleteAll removes every generation of name up to n, newest first.
func (c Chain[T]) DeleteAll(ctx context.Context, name string, n int64) error {
	for ; n >= 1; n-- {
		if _, err := c.Coll.DeleteID(ctx, GenID(name, n)); err != nil {
			return fmt.Errorf("delete %s: %w", GenID(name, n), err)
		}
	}
	return nil
}

// Lease is a time-limited right to do a job (a purge of one customer, one
// send attempt).
type Lease struct {
	Owner     string    `bson:"owner"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// ErrLeaseHeld: another owner's lease has not expired.
var ErrLeaseHeld = errors.New("store: lease held by another owner")

// TakeLease takes the lease name for owner until now+ttl: a new generation
// when the current one is expired, released or owner's own; ErrLeaseHeld
// while another owner's lease runs (or when another taker wins the race).
func TakeLease(ctx context.Context, coll *mongo.Collection, name, owner string, now time.Time, ttl time.Duration) (*Gen[Lease], error) {
	c := Chain[Lease]{Coll: Plain(coll)}
	n := int64(1)
	head, err := c.Head(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if head.Body.Owner != owner && now.Before(head.Body.ExpiresAt) {
			return nil, ErrLeaseHeld
		}
		n = head.N + 1
	}
	g, err := c.Take(ctx, name, n, Lease{Owner: owner, ExpiresAt: now.Add(ttl).UTC().Truncate(time.Millisecond)})
	if errors.Is(err, ErrExists) {
		return nil, ErrLeaseHeld
	}
	return g, err
}

// ReleaseLease ends a lease its owner holds, so the next run need not wait
// for it to expire. A lease taken over meanwhile is a newer generation and
// stays untouched.
func ReleaseLease(ctx context.Context, coll *mongo.Collection, g *Gen[Lease], now time.Time) error {
	g.Body.ExpiresAt = now.UTC().Truncate(time.Millisecond)
	return Chain[Lease]{Coll: Plain(coll)}.Put(ctx, g)
}
