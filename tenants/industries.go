package tenants

import "github.com/google/uuid"

// Industry is one entry of the industry catalogue: a NAICS 2022 sector.
// ID is the UUIDv5 of "naics:<code>" in the URL namespace, so it is the
// same on every deployment.
type Industry struct {
	ID   string
	Code string
	Name string
}

var industries = func() []Industry {
	sectors := []struct{ code, name string }{
		{"11", "Agriculture, Forestry, Fishing and Hunting"},
		{"21", "Mining, Quarrying, and Oil and Gas Extraction"},
		{"22", "Utilities"},
		{"23", "Construction"},
		{"31-33", "Manufacturing"},
		{"42", "Wholesale Trade"},
		{"44-45", "Retail Trade"},
		{"48-49", "Transportation and Warehousing"},
		{"51", "Information"},
		{"52", "Finance and Insurance"},
		{"53", "Real Estate and Rental and Leasing"},
		{"54", "Professional, Scientific, and Technical Services"},
		{"55", "Management of Companies and Enterprises"},
		{"56", "Administrative and Support and Waste Management and Remediation Services"},
		{"61", "Educational Services"},
		{"62", "Health Care and Social Assistance"},
		{"71", "Arts, Entertainment, and Recreation"},
		{"72", "Accommodation and Food Services"},
		{"81", "Other Services (except Public Administration)"},
		{"92", "Public Administration"},
	}
	out := make([]Industry, len(sectors))
	for i, s := range sectors {
		out[i] = Industry{
			ID:   uuid.NewSHA1(uuid.NameSpaceURL, []byte("naics:"+s.code)).String(),
			Code: s.code,
			Name: s.name,
		}
	}
	return out
}()

// Industries returns the catalogue, ordered by code.
func Industries() []Industry {
	return append([]Industry(nil), industries...)
}

func knownIndustry(id string) bool {
	for _, in := range industries {
		if in.ID == id {
			return true
		}
	}
	return false
}
