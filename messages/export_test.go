package messages

// HoldBeforeCheck makes s's sender call hold(messageID) after it claimed
// an attempt and before it judges the attempt again right before the
// Twilio create. Set it before the sender runs.
func HoldBeforeCheck(s *Service, hold func(messageID string)) { s.holdBeforeCheck = hold }
