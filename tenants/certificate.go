package tenants

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/switchboard/switchboard"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// CertificateSigner signs erasure certificates (tokens.ErasureKeys): a
// compact JWS over the claims, verifiable against the published keys.
type CertificateSigner interface {
	Sign(ctx context.Context, claims map[string]any) (string, error)
}

// ErrNotShredded: the customer has no erasure certificate because it is
// not SHREDDED (yet).
var ErrNotShredded = errors.New("not shredded")

const certificatesColl = "certificates"

// certificateDoc is a customer's certificate, issued once by the shred.
type certificateDoc struct {
	ID          string `bson:"_id"` // the customer id
	Certificate string `bson:"certificate"`
}

// cipherName is the certificate's description of what sealed the data.
const cipherName = "XChaCha20-Poly1305, HKDF-SHA256 subkeys"

// issueCertificate signs and stores the certificate of a shredded customer
// (after NIST SP 800-88r1's certificate of sanitization). Issuing twice
// (a retried shred) keeps the first: the insert of its _id is the claim.
func (s *Service) issueCertificate(ctx context.Context, doc *customerDoc, deletedAt time.Time, deleted int64) error {
	if s.cfg.Certificates == nil {
		return nil
	}
	if doc.Erasure == nil || doc.TerminatedAt == nil {
		return fmt.Errorf("issue certificate: customer %s has no erasure record", doc.ID)
	}
	retention := map[string]any{"strategy": "", "period": nil, "shredAt": nil}
	if r := doc.Retention; r != nil {
		retention["strategy"] = string(r.Strategy)
		if r.Period != nil {
			retention["period"] = *r.Period
		}
		if r.ShredAt != nil {
			retention["shredAt"] = switchboard.FormatTime(*r.ShredAt)
		}
	}
	var tw any
	if doc.Twilio != nil {
		// Closed at termination, or by this shred if it was not then.
		tw = map[string]any{"accountSid": doc.Twilio.AccountSID, "status": string(SubaccountClosed), "at": switchboard.FormatTime(*doc.TerminatedAt)}
	}
	jti, err := uuid.NewV7()
	if err != nil {
		return err
	}
	claims := map[string]any{
		"iss": s.cfg.Issuer, "jti": jti.String(), "iat": s.now().Unix(),
		"sub": doc.ID, "partnerId": doc.PartnerID, "space": doc.Space,
		"method": "cryptographic-erase", "keyId": doc.Erasure.KeyID, "cipher": cipherName,
		"masterKeyId": doc.Erasure.MasterKeyID, "terminatedAt": switchboard.FormatTime(*doc.TerminatedAt), "retention": retention,
		"keyDestroyedAt": switchboard.FormatTime(doc.Erasure.KeyDestroyedAt),
		"verification":   map[string]any{"method": doc.Erasure.Verification, "at": switchboard.FormatTime(doc.Erasure.VerifiedAt)},
		"dataDeletedAt":  switchboard.FormatTime(deletedAt), "documentsDeleted": deleted,
		"twilio": tw, "tool": "switchboard " + s.cfg.Version,
	}
	jws, err := s.cfg.Certificates.Sign(ctx, claims)
	if err != nil {
		return fmt.Errorf("issue certificate: %w", err)
	}
	_, err = s.cfg.Control.Collection(certificatesColl).InsertOne(ctx, certificateDoc{ID: doc.ID, Certificate: jws})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("issue certificate: %w", err)
	}
	return nil
}

// ErasureCertificate returns the certificate of one of p's customers and its
// claims: ErrNotShredded until the shred that issues it has finished.
func (s *Service) ErasureCertificate(ctx context.Context, p Partner, id string) (string, map[string]any, error) {
	doc, err := s.find(ctx, p.ID, id)
	if err != nil {
		return "", nil, err
	}
	if doc.Status != StatusShredded {
		return "", nil, ErrNotShredded
	}
	var c certificateDoc
	err = s.cfg.Control.Collection(certificatesColl).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil, ErrNotShredded // the purge is still finishing it
	}
	if err != nil {
		return "", nil, fmt.Errorf("erasure certificate: %w", err)
	}
	parts := strings.Split(c.Certificate, ".")
	if len(parts) != 3 {
		return "", nil, errors.New("erasure certificate: stored certificate is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil, fmt.Errorf("erasure certificate: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", nil, fmt.Errorf("erasure certificate: %w", err)
	}
	return c.Certificate, claims, nil
}
