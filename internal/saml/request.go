package saml

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/beevik/etree"
)

// Clock tolerances for IssueInstant of received messages.
const (
	clockSkew  = 3 * time.Minute  // a message from the future
	maxMsgAge  = 10 * time.Minute // a message from the past
	maxIDLen   = 256
	maxNameLen = 1024
)

// refusal is a request idbridge will not serve; its text is safe to show
// to the peer.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refuse(format string, a ...any) error { return &refusal{fmt.Sprintf(format, a...)} }

// message is what every received protocol message has in common, read from
// the verified (or, when unsigned, the checked) element.
type message struct {
	root         *etree.Element
	SP           *ServiceProvider
	ID           string
	IssueInstant time.Time
	Destination  string
	Signed       bool
	RelayState   string
	Binding      string
}

// authnRequest is a checked AuthnRequest.
type authnRequest struct {
	message
	ACS        Endpoint // the registered endpoint to answer to
	ForceAuthn bool
	IsPassive  bool
}

// logoutRequest is a checked LogoutRequest.
type logoutRequest struct {
	message
	NameID         string
	NameIDFormat   string
	SessionIndexes []string
}

// logoutResponse is a checked LogoutResponse.
type logoutResponse struct {
	message
	InResponseTo string
	Status       string
}

// parseMessage parses and checks the common part of a received message:
// XML hygiene, element name, a known Issuer, the signature (required when
// mustSign), Version, ID, IssueInstant and Destination.
func (idp *IdP) parseMessage(in *inbound, tag, destination string, mustSign func(*ServiceProvider) bool) (*message, error) {
	doc, err := parseXML(in.XML, maxMessageSize)
	if err != nil {
		return nil, refuse("%v", err)
	}
	root := doc.Root()
	if !isElem(root, nsSAMLP, tag) {
		return nil, refuse("expected a samlp:%s", tag)
	}
	issuer, err := readIssuer(root)
	if err != nil {
		return nil, err
	}
	sp, ok := idp.sps.ByEntityID(issuer)
	if !ok {
		return nil, refuse("unknown issuer %q", truncate(issuer, 200))
	}
	m := &message{SP: sp, RelayState: in.RelayState, Binding: in.Binding}
	if len(sp.Certificates) > 0 {
		switch in.Binding {
		case BindingRedirect:
			err = verifyRedirect(in, sp.Certificates)
		case BindingPOST:
			var signed *etree.Element
			signed, err = verifyEnveloped(root, sp.Certificates)
			if err == nil {
				root = signed
				// Read everything again from what was signed.
				if again, err2 := readIssuer(root); err2 != nil || again != issuer {
					return nil, refuse("issuer changed under the signature")
				}
			}
		}
		switch {
		case err == nil:
			m.Signed = true
		case errors.Is(err, errUnsigned):
			if mustSign(sp) {
				return nil, refuse("%s from %s must be signed", tag, sp.Name)
			}
		default:
			return nil, refuse("bad signature on %s from %s: %v", tag, sp.Name, err)
		}
	}
	m.root = root
	if v := root.SelectAttrValue("Version", ""); v != "2.0" {
		return nil, refuse("Version must be 2.0")
	}
	m.ID = root.SelectAttrValue("ID", "")
	if m.ID == "" || len(m.ID) > maxIDLen {
		return nil, refuse("missing or oversized ID")
	}
	m.IssueInstant, err = parseSAMLTime(root.SelectAttrValue("IssueInstant", ""))
	if err != nil {
		return nil, refuse("IssueInstant: %v", err)
	}
	now := idp.now()
	if m.IssueInstant.After(now.Add(clockSkew)) || m.IssueInstant.Before(now.Add(-maxMsgAge)) {
		return nil, refuse("IssueInstant %s is too far from now", samlTime(m.IssueInstant))
	}
	m.Destination = root.SelectAttrValue("Destination", "")
	if m.Destination != "" && m.Destination != destination {
		return nil, refuse("Destination %q is not %s", truncate(m.Destination, 200), destination)
	}
	return m, nil
}

func readIssuer(root *etree.Element) (string, error) {
	el, err := onlyChild(root, nsSAML, "Issuer")
	if err != nil {
		return "", refuse("%v", err)
	}
	if el == nil {
		return "", refuse("no Issuer")
	}
	if f := el.SelectAttrValue("Format", nameIDFormatEntity); f != nameIDFormatEntity {
		return "", refuse("Issuer Format must be entity")
	}
	s, err := textOf(el)
	if err != nil || s == "" || len(s) > maxNameLen {
		return "", refuse("bad Issuer")
	}
	return s, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func xsBool(e *etree.Element, attr string) (bool, error) {
	switch e.SelectAttrValue(attr, "false") {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, refuse("%s is not a boolean", attr)
}

// parseAuthnRequest checks an AuthnRequest and resolves the ACS endpoint to
// a registered one: an unregistered URL or index is refused, never honoured.
func (idp *IdP) parseAuthnRequest(in *inbound) (*authnRequest, error) {
	if in.Param != "SAMLRequest" {
		return nil, refuse("expected a SAMLRequest")
	}
	m, err := idp.parseMessage(in, "AuthnRequest", idp.ssoURL(),
		func(sp *ServiceProvider) bool { return sp.AuthnRequestsSigned })
	if err != nil {
		return nil, err
	}
	req := &authnRequest{message: *m}
	root := m.root
	if req.ForceAuthn, err = xsBool(root, "ForceAuthn"); err != nil {
		return nil, err
	}
	if req.IsPassive, err = xsBool(root, "IsPassive"); err != nil {
		return nil, err
	}
	if b := root.SelectAttrValue("ProtocolBinding", ""); b != "" && b != BindingPOST {
		return nil, refuse("ProtocolBinding %q is not supported; use HTTP-POST", truncate(b, 100))
	}
	acsURL := root.SelectAttr("AssertionConsumerServiceURL")
	acsIndex := root.SelectAttr("AssertionConsumerServiceIndex")
	sp := m.SP
	switch {
	case acsURL != nil && acsIndex != nil:
		return nil, refuse("AssertionConsumerServiceURL and AssertionConsumerServiceIndex are mutually exclusive")
	case acsURL != nil:
		found := false
		for _, e := range sp.ACS {
			if e.Location == acsURL.Value && e.Binding == BindingPOST {
				req.ACS, found = e, true
				break
			}
		}
		if !found {
			return nil, refuse("AssertionConsumerServiceURL %q is not registered for %s", truncate(acsURL.Value, 200), sp.Name)
		}
	case acsIndex != nil:
		idx, err := strconv.Atoi(acsIndex.Value)
		found := false
		for _, e := range sp.ACS {
			if err == nil && e.Index == idx && e.Binding == BindingPOST {
				req.ACS, found = e, true
				break
			}
		}
		if !found {
			return nil, refuse("AssertionConsumerServiceIndex %q is not registered for %s", truncate(acsIndex.Value, 20), sp.Name)
		}
	default:
		e, ok := sp.defaultACS()
		if !ok {
			return nil, refuse("%s has no HTTP-POST AssertionConsumerService", sp.Name)
		}
		req.ACS = e
	}
	return req, nil
}

// parseLogoutRequest checks a LogoutRequest. When the SP has a certificate
// the request must be signed.
func (idp *IdP) parseLogoutRequest(in *inbound) (*logoutRequest, error) {
	m, err := idp.parseMessage(in, "LogoutRequest", idp.sloURL(),
		func(sp *ServiceProvider) bool { return len(sp.Certificates) > 0 })
	if err != nil {
		return nil, err
	}
	req := &logoutRequest{message: *m}
	if v := m.root.SelectAttrValue("NotOnOrAfter", ""); v != "" {
		t, err := parseSAMLTime(v)
		if err != nil {
			return nil, refuse("NotOnOrAfter: %v", err)
		}
		if !idp.now().Before(t.Add(clockSkew)) {
			return nil, refuse("LogoutRequest expired")
		}
	}
	nid, err := onlyChild(m.root, nsSAML, "NameID")
	if err != nil {
		return nil, refuse("%v", err)
	}
	if nid == nil {
		return nil, refuse("LogoutRequest without a NameID (encrypted NameIDs are not supported)")
	}
	if req.NameID, err = textOf(nid); err != nil || req.NameID == "" || len(req.NameID) > maxNameLen {
		return nil, refuse("bad NameID")
	}
	req.NameIDFormat = nid.SelectAttrValue("Format", NameIDFormatUnspecified)
	for _, c := range m.root.ChildElements() {
		if isElem(c, nsSAMLP, "SessionIndex") {
			s, err := textOf(c)
			if err != nil || len(s) > maxIDLen || len(req.SessionIndexes) > 16 {
				return nil, refuse("bad SessionIndex")
			}
			req.SessionIndexes = append(req.SessionIndexes, s)
		}
	}
	return req, nil
}

// parseLogoutResponse checks a LogoutResponse. When the SP has a
// certificate the response must be signed.
func (idp *IdP) parseLogoutResponse(in *inbound) (*logoutResponse, error) {
	m, err := idp.parseMessage(in, "LogoutResponse", idp.sloURL(),
		func(sp *ServiceProvider) bool { return len(sp.Certificates) > 0 })
	if err != nil {
		return nil, err
	}
	resp := &logoutResponse{message: *m, InResponseTo: m.root.SelectAttrValue("InResponseTo", "")}
	st, err := onlyChild(m.root, nsSAMLP, "Status")
	if err != nil || st == nil {
		return nil, refuse("LogoutResponse without Status")
	}
	sc, err := onlyChild(st, nsSAMLP, "StatusCode")
	if err != nil || sc == nil {
		return nil, refuse("LogoutResponse without StatusCode")
	}
	resp.Status = sc.SelectAttrValue("Value", "")
	return resp, nil
}
