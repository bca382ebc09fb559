package messages_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard/switchboard/twilio/twiliotest"
)

// TestBatchSendsEveryMessageOnce hands many accepted messages of one
// customer to the sender at once (they run in batches) and finds each at
// Twilio exactly once.
func TestBatchSendsEveryMessageOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.service(e.client, 5*time.Second)
	const n = 250
	var ids []string
	for i := range n {
		ids = append(ids, e.send(t, svc, fmt.Sprintf("batch-%d", i)).ID)
	}
	start := time.Now()
	defer run(svc)()
	for _, id := range ids {
		e.wait(t, svc, id, sending)
	}
	t.Logf("%d messages sent in %s", n, time.Since(start))
	if got := e.dbl.RouteCount(twiliotest.RouteMessageCreate); got != n {
		t.Fatalf("%d creates for %d messages", got, n)
	}
}
