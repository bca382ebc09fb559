// Package crypto holds Switchboard's keys: the age master key that wraps
// customer keys, the per-customer keyring, field sealing with associated data,
// and blind indexes. Callers never see a nonce or key bytes.
package crypto
