package saml

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Lifetimes of what idbridge issues.
const (
	assertionLifetime = 5 * time.Minute // Conditions and SubjectConfirmationData
	notBeforeSkew     = time.Minute     // NotBefore is this far back for slow SP clocks
)

// Atlassian's claim names.
const (
	claimGivenName = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	claimSurname   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	claimName      = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
)

// attribute is one SAML attribute to send.
type attribute struct {
	Name, FriendlyName string
	Values             []string
}

// attributes returns the attribute set of the SP's profile for p.
func attributes(profile AttributeProfile, p Principal) []attribute {
	if profile == AttributesAtlassian {
		return []attribute{
			{Name: claimGivenName, Values: []string{p.FirstName}},
			{Name: claimSurname, Values: []string{p.LastName}},
			{Name: claimName, Values: []string{p.ID}},
		}
	}
	var out []attribute
	add := func(name, friendly string, vals ...string) {
		var keep []string
		for _, v := range vals {
			if v != "" {
				keep = append(keep, v)
			}
		}
		if len(keep) > 0 {
			out = append(out, attribute{Name: name, FriendlyName: friendly, Values: keep})
		}
	}
	add("urn:oid:0.9.2342.19200300.100.1.3", "mail", p.Email)
	add("urn:oid:2.5.4.42", "givenName", p.FirstName)
	add("urn:oid:2.5.4.4", "sn", p.LastName)
	add("urn:oid:2.16.840.1.113730.3.1.241", "displayName", strings.TrimSpace(p.FirstName+" "+p.LastName))
	add("urn:oid:0.9.2342.19200300.100.1.1", "uid", p.Username)
	add("urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf", p.Groups...)
	return out
}

// nameID returns the NameID value and format sp gets for p.
func (idp *IdP) nameID(sp *ServiceProvider, p Principal) (value, format string, err error) {
	switch sp.NameID {
	case NameIDVirtualAddress:
		value, format = p.VirtualAddress, NameIDFormatEmail
	case NameIDEmail:
		value, format = p.Email, NameIDFormatEmail
	case NameIDUsername:
		value, format = p.Username, NameIDFormatUnspecified
	case NameIDPersistent:
		if p.ID == "" {
			return "", "", errors.New("principal has no ID")
		}
		value, format = idp.pairwise(p.ID, sp.EntityID), NameIDFormatPersistent
	default:
		return "", "", fmt.Errorf("unknown name_id %q", sp.NameID)
	}
	if value == "" {
		return "", "", fmt.Errorf("principal has no %s", sp.NameID)
	}
	return value, format, nil
}

// pairwise is the persistent NameID of an account at one SP (core 8.3.7):
// HMAC-SHA256(secret, accountID NUL entityID), hex. It reveals neither the
// account id nor links the account across SPs.
func (idp *IdP) pairwise(accountID, entityID string) string {
	m := hmac.New(sha256.New, idp.secret)
	m.Write([]byte("persistent\x00" + accountID + "\x00" + entityID))
	return hex.EncodeToString(m.Sum(nil))
}

// sessionIndex names an idbridge session to SPs without revealing its id.
func (idp *IdP) sessionIndex(sessionID string) string {
	m := hmac.New(sha256.New, idp.secret)
	m.Write([]byte("session-index\x00" + sessionID))
	return "_" + hex.EncodeToString(m.Sum(nil)[:20])
}

// addNameID adds a saml:NameID to parent, with the qualifiers that
// persistent identifiers carry.
func (idp *IdP) addNameID(parent *etree.Element, sp *ServiceProvider, value, format string) {
	n := parent.CreateElement("saml:NameID")
	n.CreateAttr("Format", format)
	if format == NameIDFormatPersistent {
		n.CreateAttr("NameQualifier", idp.entityID())
		n.CreateAttr("SPNameQualifier", sp.EntityID)
	}
	n.SetText(value)
}

// newProtocolMessage starts a samlp message with its Issuer.
func (idp *IdP) newProtocolMessage(tag, destination, inResponseTo string) *etree.Element {
	m := etree.NewElement("samlp:" + tag)
	m.CreateAttr("xmlns:samlp", nsSAMLP)
	m.CreateAttr("xmlns:saml", nsSAML)
	m.CreateAttr("ID", newID())
	m.CreateAttr("Version", "2.0")
	m.CreateAttr("IssueInstant", samlTime(idp.now()))
	if destination != "" {
		m.CreateAttr("Destination", destination)
	}
	if inResponseTo != "" {
		m.CreateAttr("InResponseTo", inResponseTo)
	}
	m.CreateElement("saml:Issuer").SetText(idp.entityID())
	return m
}

func addStatus(m *etree.Element, code, sub string) {
	sc := m.CreateElement("samlp:Status").CreateElement("samlp:StatusCode")
	sc.CreateAttr("Value", code)
	if sub != "" {
		sc.CreateElement("samlp:StatusCode").CreateAttr("Value", sub)
	}
}

// assertionResult is a built Response and what to remember about it.
type assertionResult struct {
	Response    *etree.Element
	Participant Participant
}

// buildResponse builds and signs the Response carrying an assertion about
// s.Principal for sp, posted to acs. inResponseTo is empty for IdP-initiated
// (unsolicited) responses.
func (idp *IdP) buildResponse(ctx context.Context, sp *ServiceProvider, acs, inResponseTo string, s Session) (*assertionResult, error) {
	kp, err := idp.keys.Active(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	nameID, format, err := idp.nameID(sp, s.Principal)
	if err != nil {
		return nil, err
	}
	now := idp.now()
	notOnOrAfter := samlTime(now.Add(assertionLifetime))
	sessionIndex := idp.sessionIndex(s.ID)

	a := etree.NewElement("saml:Assertion")
	a.CreateAttr("xmlns:saml", nsSAML)
	a.CreateAttr("ID", newID())
	a.CreateAttr("Version", "2.0")
	a.CreateAttr("IssueInstant", samlTime(now))
	a.CreateElement("saml:Issuer").SetText(idp.entityID())

	subj := a.CreateElement("saml:Subject")
	idp.addNameID(subj, sp, nameID, format)
	sc := subj.CreateElement("saml:SubjectConfirmation")
	sc.CreateAttr("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")
	scd := sc.CreateElement("saml:SubjectConfirmationData")
	if inResponseTo != "" {
		scd.CreateAttr("InResponseTo", inResponseTo)
	}
	scd.CreateAttr("NotOnOrAfter", notOnOrAfter)
	scd.CreateAttr("Recipient", acs)

	cond := a.CreateElement("saml:Conditions")
	cond.CreateAttr("NotBefore", samlTime(now.Add(-notBeforeSkew)))
	cond.CreateAttr("NotOnOrAfter", notOnOrAfter)
	cond.CreateElement("saml:AudienceRestriction").CreateElement("saml:Audience").SetText(sp.EntityID)

	as := a.CreateElement("saml:AuthnStatement")
	authnInstant := s.AuthnInstant
	if authnInstant.IsZero() || authnInstant.After(now) {
		authnInstant = now
	}
	as.CreateAttr("AuthnInstant", samlTime(authnInstant))
	as.CreateAttr("SessionIndex", sessionIndex)
	as.CreateAttr("SessionNotOnOrAfter", samlTime(now.Add(idp.sessionLifetime)))
	as.CreateElement("saml:AuthnContext").CreateElement("saml:AuthnContextClassRef").SetText(authnContextPassword)

	p := s.Principal
	if sp.Attributes == AttributesGeneric && p.Groups == nil && p.LoadGroups != nil {
		if p.Groups, err = p.LoadGroups(ctx); err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
	}
	if attrs := attributes(sp.Attributes, p); len(attrs) > 0 {
		st := a.CreateElement("saml:AttributeStatement")
		for _, at := range attrs {
			el := st.CreateElement("saml:Attribute")
			el.CreateAttr("Name", at.Name)
			el.CreateAttr("NameFormat", attrNameFormatURI)
			if at.FriendlyName != "" {
				el.CreateAttr("FriendlyName", at.FriendlyName)
			}
			for _, v := range at.Values {
				el.CreateElement("saml:AttributeValue").SetText(v)
			}
		}
	}

	sg := signer{kp}
	if sp.signAssertion() {
		if err := sg.signEnveloped(a); err != nil {
			return nil, err
		}
	}
	resp := idp.newProtocolMessage("Response", acs, inResponseTo)
	addStatus(resp, StatusSuccess, "")
	resp.AddChild(a)
	if sp.signResponse() {
		if err := sg.signEnveloped(resp); err != nil {
			return nil, err
		}
	}
	return &assertionResult{
		Response:    resp,
		Participant: Participant{SP: sp.EntityID, NameID: nameID, NameIDFormat: format, SessionIndex: sessionIndex},
	}, nil
}

// buildErrorResponse builds a signed Response without assertion.
func (idp *IdP) buildErrorResponse(ctx context.Context, acs, inResponseTo, code, sub string) (*etree.Element, error) {
	kp, err := idp.keys.Active(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	resp := idp.newProtocolMessage("Response", acs, inResponseTo)
	addStatus(resp, code, sub)
	if err := (signer{kp}).signEnveloped(resp); err != nil {
		return nil, err
	}
	return resp, nil
}
