package messages

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/switchboard/switchboard/store"
)

// A customer's messages are listed newest first through index entries
// (store.Versioned.Scan), one range per filter: all of them, one contact's,
// one direction's, one status's, one phone's (either party, by its blind
// index). Each key ends with the creation time and the id, so every range
// is in the list's order; a query with several filters reads the range of
// the most selective one and checks the others on each message.
const (
	ixAll       = "messages/t/"
	ixContact   = "messages/c/"
	ixDirection = "messages/d/"
	ixStatus    = "messages/s/"
	ixPhone     = "messages/p/"
)

func messageOrder(at time.Time, id string) string {
	return store.TimeKey(at) + "/" + id
}

// messageEntries are the index entries of a message's state.
func messageEntries(d *messageDoc) []string {
	o := messageOrder(d.CreatedAt, d.ID)
	keys := []string{ixAll + o, ixDirection + d.Direction + "/" + o, ixStatus + d.Status + "/" + o}
	if d.ContactID != nil {
		keys = append(keys, ixContact+*d.ContactID+"/"+o)
	}
	for i, idx := range d.PartyIdx {
		if i > 0 && string(idx) == string(d.PartyIdx[0]) {
			continue // a message to its own sender: one entry
		}
		keys = append(keys, ixPhone+hex.EncodeToString(idx)+"/"+o)
	}
	return keys
}

// listRange is the index range a query reads: the most selective filter's.
func (h *Handle) listRange(q Query, phoneIdx []byte) store.Range {
	var p string
	switch {
	case q.ContactID != "":
		p = ixContact + q.ContactID + "/"
	case phoneIdx != nil:
		p = ixPhone + hex.EncodeToString(phoneIdx) + "/"
	case q.Status != "":
		p = ixStatus + q.Status + "/"
	case q.Direction != "":
		p = ixDirection + q.Direction + "/"
	default:
		p = ixAll
	}
	r := store.Prefix(p)
	r.Desc = true
	return r
}

// phoneMessages is the range of the messages to or from one number (its
// blind index).
func phoneMessages(idx []byte) store.Range {
	return store.Prefix(ixPhone + hex.EncodeToString(idx) + "/")
}

// contactMessages is the range of one contact's messages.
func contactMessages(contactID string) store.Range { return store.Prefix(ixContact + contactID + "/") }

// Reindex writes the index entries of every message of a customer: for
// messages stored before the entries existed (switchboard migrate).
func Reindex(ctx context.Context, t *store.Tenant) (int, error) {
	v := &store.Versioned[messageDoc, struct{}]{Docs: t.Collection("messages"), Claims: t.Collection("message_claims"),
		Entries: t.Collection("indexes"), Index: messageEntries, Version: func(d *messageDoc) int64 { return d.Version }}
	return v.Reindex(ctx)
}
