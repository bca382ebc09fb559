package tenants

import (
	"time"

	"github.com/switchboard/switchboard"
)

// validate checks a retention request and returns the retention to store
// for a customer terminated at terminatedAt. A period sent with
// NO_RETENTION or INDEFINITE is accepted and ignored. Field errors are named
// under prefix ("retention." in a terminate body, "" in a retention change).
func (in RetentionInput) validate(terminatedAt time.Time, prefix string) (Retention, error) {
	var verr switchboard.ValidationError
	r := Retention{Strategy: Strategy(in.Strategy)}
	switch r.Strategy {
	case NoRetention:
		// The key is destroyed during the terminate call itself.
		at := terminatedAt
		r.ShredAt = &at
	case Indefinite:
	case Temporary:
		switch {
		case in.Period == nil:
			verr.Add(prefix+"period", "is required for TEMPORARY")
		case *in.Period < 1 || *in.Period > 120:
			verr.Add(prefix+"period", "must be between 1 and 120 months")
		default:
			p := *in.Period
			at := AddMonths(terminatedAt, p)
			r.Period, r.ShredAt = &p, &at
		}
	case "":
		verr.Add(prefix+"strategy", "is required")
	default:
		verr.Add(prefix+"strategy", "must be one of NO_RETENTION, TEMPORARY, INDEFINITE")
	}
	if err := verr.Err(); err != nil {
		return Retention{}, err
	}
	return r, nil
}

// AddMonths adds n calendar months to t, clamping the day to the last day of
// the resulting month: Jan 31 + 1 month is Feb 28 (or 29).
func AddMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	last := time.Date(y, m+time.Month(n)+1, 0, 0, 0, 0, 0, t.Location()).Day()
	if d > last {
		d = last
	}
	return time.Date(y, m+time.Month(n), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}
