// Package crypto holds Switchboard's keys: the age master key that wraps
// customer keys, the per-customer keyring, field sealing with associated
// data, and blind indexes.
//
// Invariants:
//
//   - Callers never choose a nonce and never hold key bytes: a [Cipher] seals
//     and opens, a [Keyring] hands out Ciphers, a [MasterKey] wraps.
//   - A customer key exists in storage only age-wrapped to a master
//     recipient, inside an envelope naming its customer and key id; a key
//     wrapped for one customer is never accepted for another.
//   - A sealed value opens only with the key, customer id, collection,
//     document id and field name it was sealed for; every failure to open is
//     the one opaque [ErrDecrypt].
//   - Nothing unwrapped is ever written or logged: every type holding
//     secret bytes redacts itself in String, GoString, Format and LogValue.
//   - The keyring forgets an unwrapped key within [MaxCacheTTL], and at once
//     when it is destroyed.
package crypto
