// Package racing releases goroutines at once, for the race tests: many
// writers let go together, so that a race the code has is one they run.
package racing

import "sync"

// Release runs f(0..n-1) in n goroutines, all released at once when every
// one of them is waiting, and returns when all have returned.
func Release(n int, f func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			f(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}
