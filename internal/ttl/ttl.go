// Package ttl is the one in-memory cache of Switchboard: bounded (least
// recently used entries go first, golang-lru/v2) and with a time to live
// measured on an injected clock, so tests drive expiry without sleeping.
// Every cache in the process is one of these: unwrapped customer keys,
// verified partner keys, customer statuses for token checks, ids already
// copied, customers whose indexes exist.
package ttl

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache maps keys to values for at most TTL each, holding at most Size
// entries. It is safe for concurrent use. A value handed out is never
// changed or cleared by the cache: evicting an entry only forgets it.
type Cache[K comparable, V any] struct {
	lru *lru.Cache[K, entry[V]]
	ttl time.Duration
	now func() time.Time
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache of at most size entries kept for ttl each, on the
// clock now (nil: time.Now).
func New[K comparable, V any](size int, ttl time.Duration, now func() time.Time) *Cache[K, V] {
	if now == nil {
		now = time.Now
	}
	c, err := lru.New[K, entry[V]](size)
	if err != nil {
		panic("ttl: " + err.Error()) // only for a size < 1: a programming error
	}
	return &Cache[K, V]{lru: c, ttl: ttl, now: now}
}

// Get returns the value of key if it is there and has not expired.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	e, ok := c.lru.Get(key)
	if !ok {
		var zero V
		return zero, false
	}
	if !c.now().Before(e.expires) {
		c.lru.Remove(key)
		var zero V
		return zero, false
	}
	return e.v, true
}

// Add keeps value under key for the cache's TTL from now.
func (c *Cache[K, V]) Add(key K, value V) {
	c.lru.Add(key, entry[V]{v: value, expires: c.now().Add(c.ttl)})
}

// Remove forgets key.
func (c *Cache[K, V]) Remove(key K) { c.lru.Remove(key) }

// Purge forgets everything.
func (c *Cache[K, V]) Purge() { c.lru.Purge() }

// Len is how many entries the cache holds, expired ones not yet dropped
// included.
func (c *Cache[K, V]) Len() int { return c.lru.Len() }

// DropExpired forgets every expired entry (a sweeper calls it, so that an
// idle secret does not stay in memory past its TTL).
func (c *Cache[K, V]) DropExpired() {
	now := c.now()
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok && !now.Before(e.expires) {
			c.lru.Remove(k)
		}
	}
}
