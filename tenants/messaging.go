package tenants

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard/switchboard/crypto"
)

// MessagingAccount is what messaging needs of a customer: its status, its
// Twilio sub-account and that sub-account's own auth token (to verify the
// sub-account's webhooks; "" when the customer has none or its key is gone).
type MessagingAccount struct {
	CustomerID string
	PartnerID  string
	Status     Status
	AccountSID string
	SubStatus  SubaccountStatus
	AuthToken  string
}

// MessagingAccount returns a customer's messaging account at its latest
// claim, scoped to partnerID unless it is "". The auth token is opened only
// for a customer whose data may still be read.
func (s *Service) MessagingAccount(ctx context.Context, partnerID, customerID string) (MessagingAccount, error) {
	doc, err := s.find(ctx, partnerID, customerID)
	if err != nil {
		return MessagingAccount{}, err
	}
	out := MessagingAccount{CustomerID: doc.ID, PartnerID: doc.PartnerID, Status: doc.Status}
	if doc.Twilio == nil {
		return out, nil
	}
	out.AccountSID, out.SubStatus = doc.Twilio.AccountSID, doc.Twilio.Status
	if doc.Status == StatusShredded || len(doc.Twilio.AuthToken) == 0 {
		return out, nil
	}
	c, err := s.cfg.Keyring.Cipher(ctx, doc.ID)
	if errors.Is(err, crypto.ErrKeyNotFound) {
		return out, nil
	}
	if err != nil {
		return MessagingAccount{}, fmt.Errorf("messaging account: %w", err)
	}
	tok, err := c.Open(authTokenField(doc.ID), doc.Twilio.AuthToken)
	if err != nil {
		return MessagingAccount{}, fmt.Errorf("open sub-account token: %w", err)
	}
	out.AuthToken = string(tok)
	return out, nil
}
