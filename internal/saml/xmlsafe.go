package saml

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// XML namespaces, bindings and formats used here.
const (
	nsSAML  = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsSAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsMD    = "urn:oasis:names:tc:SAML:2.0:metadata"
	nsDS    = "http://www.w3.org/2000/09/xmldsig#"

	BindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	BindingPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

	NameIDFormatEmail       = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	NameIDFormatUnspecified = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
	NameIDFormatPersistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	NameIDFormatTransient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	nameIDFormatEntity      = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

	StatusSuccess        = "urn:oasis:names:tc:SAML:2.0:status:Success"
	StatusRequester      = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	StatusResponder      = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	StatusNoPassive      = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
	StatusPartialLogout  = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
	authnContextPassword = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	attrNameFormatURI    = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
)

// Size limits of decoded messages.
const (
	maxMessageSize  = 64 << 10  // any SAML message after base64 and inflate
	maxMetadataSize = 1 << 20   // an SP metadata file
	maxRelayState   = 1024      // bytes; the spec's 80 breaks real SPs
	maxEncodedSize  = 128 << 10 // a SAMLRequest/SAMLResponse parameter
)

// errTooLarge and errDTD are refusals of hostile input.
var (
	errTooLarge = errors.New("message too large")
	errDTD      = errors.New("DTDs and entity declarations are not accepted")
)

// parseXML parses an untrusted message. It refuses DTDs and entity
// declarations, processing instructions other than the XML declaration,
// duplicate attributes and (unless allowComments) comments anywhere: a
// comment can split a text value (<Issuer>a<!---->b</Issuer>), and libraries
// disagree on what such a value is, so none is accepted.
func parseXML(data []byte, max int, allowComments ...bool) (*etree.Document, error) {
	if len(data) > max {
		return nil, errTooLarge
	}
	// Any markup declaration other than a comment or CDATA section: DOCTYPE,
	// ENTITY, ELEMENT, ATTLIST, NOTATION.
	for rest := data; ; {
		i := bytes.Index(rest, []byte("<!"))
		if i < 0 {
			break
		}
		rest = rest[i:]
		if !bytes.HasPrefix(rest, []byte("<!--")) && !bytes.HasPrefix(rest, []byte("<![CDATA[")) {
			return nil, errDTD
		}
		rest = rest[2:]
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true, MaxDepth: 48}
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("malformed XML: %w", err)
	}
	comments := len(allowComments) > 0 && allowComments[0]
	var root *etree.Element
	for _, tok := range doc.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if root != nil {
				return nil, errors.New("more than one root element")
			}
			root = t
		case *etree.ProcInst:
			if t.Target != "xml" || root != nil {
				return nil, errors.New("processing instructions are not accepted")
			}
		case *etree.Comment:
			if !comments {
				return nil, errors.New("comments are not accepted")
			}
		case *etree.CharData:
			if strings.TrimSpace(t.Data) != "" {
				return nil, errors.New("text outside the root element")
			}
		default:
			return nil, errDTD
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	if err := checkTree(root, comments); err != nil {
		return nil, err
	}
	return doc, nil
}

func checkTree(e *etree.Element, comments bool) error {
	seen := make(map[string]bool, len(e.Attr))
	for _, a := range e.Attr {
		k := a.Space + ":" + a.Key
		if seen[k] {
			return fmt.Errorf("duplicate attribute %s on %s", a.FullKey(), e.FullTag())
		}
		seen[k] = true
	}
	for _, tok := range e.Child {
		switch t := tok.(type) {
		case *etree.Element:
			if err := checkTree(t, comments); err != nil {
				return err
			}
		case *etree.CharData:
		case *etree.Comment:
			if !comments {
				return errors.New("comments are not accepted")
			}
		case *etree.ProcInst:
			return errors.New("processing instructions are not accepted")
		default:
			return errDTD
		}
	}
	return nil
}

// isElem reports whether e is the element {ns}tag.
func isElem(e *etree.Element, ns, tag string) bool {
	return e != nil && e.Tag == tag && e.NamespaceURI() == ns
}

// onlyChild returns the child {ns}tag of e, nil when absent, and an error
// when there is more than one.
func onlyChild(e *etree.Element, ns, tag string) (*etree.Element, error) {
	var found *etree.Element
	for _, c := range e.ChildElements() {
		if isElem(c, ns, tag) {
			if found != nil {
				return nil, fmt.Errorf("more than one %s", tag)
			}
			found = c
		}
	}
	return found, nil
}

// textOf returns the text of a simple-content element, trimmed. Child
// elements are refused (comments were refused by parseXML).
func textOf(e *etree.Element) (string, error) {
	var b strings.Builder
	for _, tok := range e.Child {
		switch t := tok.(type) {
		case *etree.CharData:
			b.WriteString(t.Data)
		default:
			return "", fmt.Errorf("%s must hold only text", e.Tag)
		}
	}
	return strings.TrimSpace(b.String()), nil
}

// newID returns a fresh xs:ID value (an NCName: it must not start with a digit).
func newID() string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "_" + hex.EncodeToString(b[:])
}

// samlTime formats t as xs:dateTime in UTC, as SAML requires.
func samlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// parseSAMLTime parses an xs:dateTime.
func parseSAMLTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad dateTime %q", s)
	}
	return t, nil
}
