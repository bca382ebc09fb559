package messages

import "context"

// HoldBeforeCheck makes s's sender call hold(messageID) after it claimed
// an attempt and before it judges the attempt again right before the
// Twilio create. Set it before the sender runs.
func HoldBeforeCheck(s *Service, hold func(messageID string)) { s.holdBeforeCheck = hold }

// HoldBeforeRedact makes s call hold(messageID) after a redaction wrote its
// job and before it redacts.
func HoldBeforeRedact(s *Service, hold func(messageID string)) { s.holdBeforeRedact = hold }

// RunRedactJob runs s's redact job of message id once, as a sender that
// found its pointer due would, pointer settled.
func RunRedactJob(ctx context.Context, s *Service, customerID, id string) {
	s.runBatch(ctx, []job{{kind: jobRedact, customerID: customerID, messageID: id}})
}
