// Package seen remembers, in memory and boundedly, ids this process has
// already handled: outbox copies (events, timeline items) that are known to
// be written need not be written again on every read. Forgetting is always
// safe; it only costs one idempotent write.
package seen

import "sync"

// Max is how many ids a Set holds before it starts over.
const Max = 10000

// Set is a bounded set of ids. The zero value is ready; it is safe for
// concurrent use.
type Set struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// Has reports whether id was added (and not forgotten since).
func (s *Set) Has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

// Add remembers id.
func (s *Set) Add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil || len(s.ids) >= Max {
		s.ids = make(map[string]struct{})
	}
	s.ids[id] = struct{}{}
}
