package ttl_test

import (
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/fakeclock"
	"github.com/switchboard/switchboard/internal/ttl"
)

func TestExpiryAndBound(t *testing.T) {
	clk := fakeclock.New(time.Unix(0, 0))
	c := ttl.New[string, int](2, 10*time.Second, clk.Now)
	c.Add("a", 1)
	clk.Add(9 * time.Second)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("within TTL: %v %v", v, ok)
	}
	clk.Add(time.Second)
	if _, ok := c.Get("a"); ok {
		t.Fatal("an entry outlived its TTL")
	}
	c.Add("a", 1)
	c.Add("b", 2)
	c.Get("a")
	c.Add("c", 3) // evicts b, the least recently used
	if _, ok := c.Get("b"); ok {
		t.Fatal("the cache grew past its size")
	}
	if _, ok := c.Get("a"); !ok {
		t.Fatal("the recently used entry was evicted")
	}
	clk.Add(11 * time.Second)
	c.DropExpired()
	if c.Len() != 0 {
		t.Fatalf("%d entries after DropExpired", c.Len())
	}
}
