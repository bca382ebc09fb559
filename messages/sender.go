package messages

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/switchboard/switchboard/tenants"
)

// Job kinds of the outbox.
const (
	jobSend   = "send"
	jobRedact = "redact"
)

// job is one piece of work of the sender: hand a message to Twilio, or
// erase Twilio's copy of it.
type job struct {
	kind, customerID, messageID string
}

func (j job) id() string { return j.kind + ":" + j.customerID + ":" + j.messageID }

// pointerDoc is a job in the control database's outbox: ids only, no
// personal data. It stays until the job is settled, so a restart finds
// every job without looking into any customer's database.
type pointerDoc struct {
	ID         string    `bson:"_id"`
	Kind       string    `bson:"kind"`
	CustomerID string    `bson:"customerId"`
	MessageID  string    `bson:"messageId"`
	At         time.Time `bson:"at"`
	Due        time.Time `bson:"due"`
}

// point writes a job's pointer (writing it again is harmless).
func (s *Service) point(ctx context.Context, j job) error {
	now := s.now()
	p := pointerDoc{ID: j.id(), Kind: j.kind, CustomerID: j.customerID, MessageID: j.messageID, At: now, Due: now}
	_, err := s.control(outboxColl).InsertOne(ctx, p)
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// pointerYoung reports whether job j's pointer was written less than
// pointerGrace ago: the change it was written for may still be on its way.
func (s *Service) pointerYoung(ctx context.Context, j job) bool {
	var p pointerDoc
	err := s.control(outboxColl).FindOne(ctx, idFilter(j.id())).Decode(&p)
	return err == nil && s.now().Sub(p.At) < pointerGrace
}

// handOff tells this process's sender about a job at once; a full queue
// leaves it to the sender's next look at the outbox.
func (s *Service) handOff(j job) {
	select {
	case s.wake <- j:
	default:
	}
}

// SenderOptions tune Run.
type SenderOptions struct {
	// Workers is how many jobs run at once (default 8).
	Workers int
	// Poll is how often the outbox is read for due jobs (default 1 s).
	Poll time.Duration
}

// Run is the sender: it works off the outbox until ctx ends, jobs handed
// off by this process at once, the others (a restart, another process's,
// a retry) when due. Several processes may run it: a message is sent only
// by the holder of its attempt. Send jobs of one customer run in batches
// (sendBatch).
func (s *Service) Run(ctx context.Context, opts SenderOptions) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	work := make(chan []job)
	var busy sync.Map // job id → struct{}: one run of a job at a time here
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				s.runBatch(ctx, batch)
				for _, j := range batch {
					busy.Delete(j.id())
				}
			}
		}()
	}
	// dispatch hands jobs to the workers: send jobs of one customer
	// together, up to maxBatch, every other job on its own.
	dispatch := func(jobs []job) bool {
		groups := map[string][]job{}
		var order []string
		for _, j := range jobs {
			if _, running := busy.LoadOrStore(j.id(), struct{}{}); running {
				continue
			}
			key := j.id()
			if j.kind == jobSend {
				key = "send:" + j.customerID
			}
			if len(groups[key]) == 0 {
				order = append(order, key)
			}
			groups[key] = append(groups[key], j)
		}
		for _, key := range order {
			g := groups[key]
			for len(g) > 0 {
				n := min(len(g), maxBatch)
				select {
				case work <- g[:n]:
				case <-ctx.Done():
					return false
				}
				g = g[n:]
			}
		}
		return true
	}
	tick := time.NewTicker(opts.Poll)
	defer func() {
		tick.Stop()
		close(work)
		wg.Wait()
	}()
	scan := func() bool {
		due, err := s.dueJobs(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("read outbox", "err", err)
		}
		return dispatch(due)
	}
	if !scan() {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.wake:
			// Whatever else was handed off meanwhile goes along.
			jobs := []job{j}
		more:
			for len(jobs) < maxBatch {
				select {
				case j := <-s.wake:
					jobs = append(jobs, j)
				default:
					break more
				}
			}
			if !dispatch(jobs) {
				return
			}
		case <-tick.C:
			if !scan() {
				return
			}
		}
	}
}

// dueJobs reads the outbox's due pointers (the outbox holds only unsettled
// jobs, so this stays as small as the work to do).
func (s *Service) dueJobs(ctx context.Context) ([]job, error) {
	cur, err := s.control(outboxColl).Find(ctx, bson.D{{Key: "due", Value: bson.D{{Key: "$lte", Value: s.now()}}}},
		options.Find().SetLimit(1000))
	if err != nil {
		return nil, err
	}
	var ps []pointerDoc
	if err := cur.All(ctx, &ps); err != nil {
		return nil, err
	}
	out := make([]job, len(ps))
	for i, p := range ps {
		out[i] = job{kind: p.Kind, customerID: p.CustomerID, messageID: p.MessageID}
	}
	return out, nil
}

// runBatch runs jobs (send jobs of one customer, or a single job) and
// settles their pointers: gone when done, due again later when not.
func (s *Service) runBatch(ctx context.Context, jobs []job) {
	var waits []time.Duration
	if len(jobs) > 1 {
		waits = s.sendBatch(ctx, jobs[0].customerID, jobs)
	} else {
		j := jobs[0]
		var after time.Duration
		var err error
		switch j.kind {
		case jobSend:
			after, err = s.send(ctx, j)
		case jobRedact:
			after, err = s.redactAtTwilio(ctx, j)
		case jobConfirm:
			after, err = s.confirmOptIn(ctx, j)
		}
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("outbox job failed; retrying", "kind", j.kind, "customerId", j.customerID, "messageId", j.messageID, "err", err)
			if after == 0 {
				after = 5 * time.Second
			}
		}
		waits = []time.Duration{after}
	}
	if ctx.Err() != nil {
		return // the pointers stay: the next run finds them
	}
	coll := s.control(outboxColl)
	var done bson.A
	var later []mongo.WriteModel
	for i, j := range jobs {
		if waits[i] == 0 {
			done = append(done, j.id())
			continue
		}
		// When to look again is a hint for the senders, written by them
		// alone: the last one written wins, which is any of them. A job
		// not settled is never dropped: a pointer another run settled
		// meanwhile is written again (the next run finds the job done).
		now := s.now()
		later = append(later, mongo.NewUpdateOneModel().SetFilter(idFilter(j.id())).SetUpsert(true).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: "due", Value: now.Add(waits[i])}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "kind", Value: j.kind}, {Key: "customerId", Value: j.customerID},
					{Key: "messageId", Value: j.messageID}, {Key: "at", Value: now}}},
			}))
	}
	if len(later) > 0 {
		if _, err := coll.BulkWrite(ctx, later, options.BulkWrite().SetOrdered(false)); err != nil {
			s.cfg.Logger.Error("reschedule outbox jobs", "err", err)
		}
	}
	switch len(done) {
	case 0:
	case 1:
		if _, err := coll.DeleteOne(ctx, idFilter(done[0].(string))); err != nil {
			s.cfg.Logger.Error("settle outbox job", "err", err)
		}
	default:
		if _, err := coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: done}}}}); err != nil {
			s.cfg.Logger.Error("settle outbox jobs", "err", err)
		}
	}
}

// openFor opens a job's customer for the sender: nil when its data can no
// longer be read (the job is then void).
func (s *Service) openFor(ctx context.Context, customerID string) (*Handle, tenants.MessagingAccount, error) {
	acct, err := s.accountOf(ctx, customerID)
	if errors.Is(err, tenants.ErrNotFound) {
		return nil, acct, nil
	}
	if err != nil {
		return nil, acct, err
	}
	h, err := s.Open(ctx, customerID)
	if errors.Is(err, tenants.ErrDataShredded) {
		return nil, acct, nil
	}
	return h, acct, err
}
