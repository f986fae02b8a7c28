package courier

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMHeaderKeys are the header fields signed (RFC 6376 section 5.4.1).
// From is listed twice so that no second From can be added unnoticed.
var DKIMHeaderKeys = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
}

// NewDKIMSigner returns a Forwarding.Sign function that prepends a
// DKIM-Signature (RFC 6376, relaxed/relaxed) by domain with selector and
// key (RSA or Ed25519). The message itself is left byte-identical, so the
// original signatures still verify.
func NewDKIMSigner(domain, selector string, key crypto.Signer) (func(data []byte) ([]byte, error), error) {
	if domain == "" || selector == "" || key == nil {
		return nil, errors.New("dkim: domain, selector and key are required")
	}
	opts := dkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             DKIMHeaderKeys,
	}
	return func(data []byte) ([]byte, error) {
		o := opts
		o.Expiration = time.Time{}
		s, err := dkim.NewSigner(&o)
		if err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		if _, err := s.Write(data); err != nil {
			s.Close()
			return nil, fmt.Errorf("dkim: %w", err)
		}
		if err := s.Close(); err != nil {
			return nil, fmt.Errorf("dkim: %w", err)
		}
		var b bytes.Buffer
		b.Grow(len(data) + 512)
		b.WriteString(s.Signature())
		b.Write(data)
		return b.Bytes(), nil
	}, nil
}
