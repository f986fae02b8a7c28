package mail

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// Signer signs messages the way a sender such as Atlassian does: an RSA
// DKIM signature (RFC 6376, relaxed/relaxed) with d=Domain, s=Selector.
type Signer struct {
	Domain, Selector string
	Key              *rsa.PrivateKey
}

// NewSigner makes a signer with a fresh 2048-bit key.
func NewSigner(domain, selector string) (*Signer, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Signer{Domain: domain, Selector: selector, Key: k}, nil
}

// TXTName is the owner name of the key record.
func (s *Signer) TXTName() string { return s.Selector + "._domainkey." + s.Domain }

// TXT is the key record's value.
func (s *Signer) TXT() string {
	der, _ := x509.MarshalPKIXPublicKey(&s.Key.PublicKey)
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// Sign returns msg with a DKIM-Signature prepended.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: s.Domain, Selector: s.Selector, Signer: s.Key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
			"Content-Type", "Content-Transfer-Encoding", "Auto-Submitted"},
	})
	return out.Bytes(), err
}

// AtlassianMessage is a Jira-like notification to rcpt, with CRLF line
// ends, of about size bytes (at least a few hundred). Its body has a line
// that starts with a dot, a long line, trailing blanks and tabs, so that
// dot-stuffing and canonicalization are exercised.
func AtlassianMessage(from, rcpt, msgID string, size int) []byte {
	var b bytes.Buffer
	crlf := func(format string, a ...any) { fmt.Fprintf(&b, format+"\r\n", a...) }
	crlf("From: \"Jane Doe (Jira)\" <%s>", from)
	crlf("To: %s", rcpt)
	crlf("Subject: [JIRA] (TRUNK-6180) Patient dashboard shows\r\n =?UTF-8?Q?the_wrong_encounter=E2=80=A6?=")
	crlf("Date: %s", time.Now().UTC().Format(time.RFC1123Z))
	crlf("Message-ID: <%s>", msgID)
	crlf("MIME-Version: 1.0")
	crlf("Content-Type: text/plain; charset=UTF-8")
	crlf("Content-Transfer-Encoding: 8bit")
	crlf("Auto-Submitted: auto-generated")
	crlf("X-JIRA-FingerPrint: 4b1c3f0e9a7d2c55")
	crlf("")
	crlf("Jane Doe commented on TRUNK-6180:")
	crlf("")
	crlf(".this line starts with a dot and must survive dot-stuffing")
	crlf("..and this one with two")
	crlf("trailing blanks   \t")
	crlf("caf\xc3\xa9 \xe2\x80\x94 8-bit UTF-8 text")
	crlf("%s", strings.Repeat("long-line ", 90))
	for i := 0; b.Len() < size-80; i++ {
		crlf("Line %05d of the issue description, lorem ipsum dolor sit amet.", i)
	}
	crlf("-- ")
	crlf("This message was sent by Atlassian Jira")
	return b.Bytes()
}
