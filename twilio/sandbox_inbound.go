package twilio

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/switchboard/switchboard/messages"
)

// Inbound makes the message a person at from texts to the sub-account's
// number to, as Twilio receives one: it is stored in the sandbox (received,
// direction inbound) and the form parameters of Twilio's inbound callback
// for it are returned, for the caller to sign (AuthToken) and post.
//
// Its SID is tagged with the sandbox's secret: 16 random bytes' worth of
// SID where the last 8 are an HMAC of the account and the first 8. So a
// sandbox with the same secret in another process (`switchboard serve`,
// when `switchboard sandbox inbound` made the message) knows the message
// too: FetchMessage answers it as an inbound message of that account,
// whose content only the process that made it holds.
func (s *Sandbox) Inbound(accountSID, from, to, body string) map[string]string {
	nonce := make([]byte, 8)
	rand.Read(nonce) // never fails (crypto/rand)
	sid := "SM" + hex.EncodeToString(nonce) + hex.EncodeToString(s.inboundTag(accountSID, nonce))
	now := time.Now().UTC().Truncate(time.Second)
	segs := max(1, (utf8.RuneCountInString(body)+segmentChars-1)/segmentChars)
	m := &messages.TwilioMessage{SID: sid, AccountSID: accountSID, From: from, To: to, Body: body,
		Status: "received", Direction: "inbound", Segments: segs, DateCreated: now, DateSent: now}
	s.mu.Lock()
	s.msgs[accountSID] = append(s.msgs[accountSID], m)
	s.msgBySID[sid] = m
	s.mu.Unlock()
	return map[string]string{
		"AccountSid": accountSID, "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "SmsStatus": "received",
		"From": from, "To": to, "Body": body, "NumMedia": "0", "NumSegments": strconv.Itoa(segs), "ApiVersion": "2010-04-01",
	}
}

// inboundTag is the tag of an inbound SID of accountSID with nonce.
func (s *Sandbox) inboundTag(accountSID string, nonce []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("switchboard sandbox inbound message\x00" + accountSID + "\x00"))
	m.Write(nonce)
	return m.Sum(nil)[:8]
}

// madeInbound reports whether sid is the SID of an inbound message that a
// sandbox with this secret made for accountSID (Inbound), in any process.
func (s *Sandbox) madeInbound(accountSID, sid string) bool {
	if !isMessageSID(sid) || sid[:2] != "SM" {
		return false
	}
	b, err := hex.DecodeString(sid[2:])
	if err != nil {
		return false
	}
	return hmac.Equal(b[8:], s.inboundTag(accountSID, b[:8]))
}
