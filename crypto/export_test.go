package crypto

// Seams for the external tests: they look inside the keyring's cache and
// its stored envelopes without widening the package's API.

// CachedLen is how many unwrapped keys the keyring holds.
func (k *Keyring) CachedLen() int {
	return k.cache.Len()
}

// Sweep runs one pass of the cache sweeper now.
func (k *Keyring) Sweep() { k.sweep() }

// UnwrapKey returns the raw customer key inside a stored wrapped value.
func UnwrapKey(m *MasterKey, wrapped []byte, customerID, keyID string) ([]byte, error) {
	env, err := m.unwrap(wrapped)
	if err != nil {
		return nil, err
	}
	key, err := openEnvelope(env, customerID, keyID)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), key...), nil
}

// WrapKey wraps key for customerID and keyID as Create does.
func WrapKey(m *MasterKey, customerID, keyID string, key []byte) ([]byte, error) {
	return m.wrap(sealEnvelope(customerID, keyID, key))
}

// SetLoadHook makes Cipher call hook after it read and unwrapped a key and
// before it caches it.
func SetLoadHook(k *Keyring, hook func()) { k.loadHook = hook }
