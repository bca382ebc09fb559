package twiliotest

import (
	"strconv"
	"time"
)

// Receive makes the message a person at from texts to the number to of
// sub-account account, as Twilio receives one (status received, direction
// inbound, fetchable and listed like any other), and returns the form
// parameters of Twilio's inbound callback for it: for the caller to sign
// with the sub-account's token and post, as Twilio would.
func (s *Server) Receive(account, from, to, body string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC().Truncate(time.Second)
	m := &Message{AccountSID: account, SID: "SM" + randomHex(16), To: to, From: from, Body: body,
		Direction: "inbound", Status: "received", Segments: segments(body), Created: now, Updated: now, Sent: now}
	s.messages = append(s.messages, m)
	return map[string]string{
		"AccountSid": account, "MessageSid": m.SID, "SmsSid": m.SID, "SmsMessageSid": m.SID, "SmsStatus": "received",
		"From": from, "To": to, "Body": body, "NumMedia": "0", "NumSegments": strconv.Itoa(m.Segments), "ApiVersion": "2010-04-01",
	}
}
