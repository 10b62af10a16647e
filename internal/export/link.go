package export

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"
)

// A download link is /v1/exports/{id}/download?expires=<unix seconds>&sig=<mac>
// where mac is base64url (no padding) of HMAC-SHA256 under the
// deployment's link key (export_secrets, shared by every API replica) over
// "bulwark-export-link\x00" + tenant + "\x00" + id + "\x00" + expires. The
// tenant is part of the MAC, not of the URL: a link checked for another
// tenant does not verify. Downloads still need the tenant's API key; the
// link bounds how long a status read's answer stays usable.

// Errors of CheckLink.
var (
	ErrLinkInvalid = errors.New("export: download link is malformed or its signature does not match")
	ErrLinkExpired = errors.New("export: download link has expired")
)

// maxSigLen bounds the signature parameter: 43 characters for 32 bytes.
const maxSigLen = 64

// Signer signs and checks download links.
type Signer struct{ key []byte }

// NewSigner returns a signer with key (at least 32 bytes).
func NewSigner(key []byte) *Signer {
	if len(key) < 32 {
		panic("export: link key shorter than 32 bytes")
	}
	return &Signer{key: key}
}

func (s *Signer) mac(tenant, id string, expires int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("bulwark-export-link\x00" + tenant + "\x00" + id + "\x00" + strconv.FormatInt(expires, 10)))
	return m.Sum(nil)
}

// Link returns the query of a download link of (tenant, id) valid until
// expires.
func (s *Signer) Link(tenant, id string, expires time.Time) string {
	e := expires.Unix()
	return "expires=" + strconv.FormatInt(e, 10) + "&sig=" + base64.RawURLEncoding.EncodeToString(s.mac(tenant, id, e))
}

// ParseLink reads the expires and sig parameters of a download link's
// query. Anything else than exactly one of each, well formed, is
// ErrLinkInvalid.
func ParseLink(q url.Values) (expires int64, sig []byte, err error) {
	if len(q) != 2 || len(q["expires"]) != 1 || len(q["sig"]) != 1 {
		return 0, nil, ErrLinkInvalid
	}
	es, ss := q["expires"][0], q["sig"][0]
	if len(es) == 0 || len(es) > 12 || len(ss) > maxSigLen {
		return 0, nil, ErrLinkInvalid
	}
	for _, c := range es {
		if c < '0' || c > '9' {
			return 0, nil, ErrLinkInvalid
		}
	}
	expires, err = strconv.ParseInt(es, 10, 64)
	if err != nil {
		return 0, nil, ErrLinkInvalid
	}
	sig, err = base64.RawURLEncoding.DecodeString(ss)
	if err != nil || len(sig) != sha256.Size {
		return 0, nil, ErrLinkInvalid
	}
	return expires, sig, nil
}

// CheckLink verifies a link's query for (tenant, id) at now: the MAC first
// (constant time), then the expiry, so a tampered expiry reads as
// invalid, not as expired.
func (s *Signer) CheckLink(tenant, id string, q url.Values, now time.Time) error {
	expires, sig, err := ParseLink(q)
	if err != nil {
		return err
	}
	if !hmac.Equal(sig, s.mac(tenant, id, expires)) {
		return ErrLinkInvalid
	}
	if now.Unix() > expires {
		return ErrLinkExpired
	}
	return nil
}
