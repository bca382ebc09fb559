package switchboard

// IsTwilioSID reports whether s has the shape of a Twilio SID with one of
// the two-letter prefixes: the prefix followed by 32 lower-case hex digits.
// Nothing else is ever a SID Twilio handed out, so anything else is refused
// before it is looked up or put into a Twilio URL.
func IsTwilioSID(s string, prefixes ...string) bool {
	if len(s) != 34 {
		return false
	}
	known := false
	for _, p := range prefixes {
		known = known || s[:2] == p
	}
	if !known {
		return false
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
