// Package saml is idbridge's SAML 2.0 identity provider: the service-provider
// registry, IdP metadata, parsing and checking of AuthnRequests and
// LogoutRequests, building and signing Responses, IdP-initiated launch and
// single logout.
//
// It follows the OASIS SAML 2.0 specifications (March 2005):
//   - Assertions and Protocols (saml-core-2.0-os): Response, Assertion,
//     AuthnRequest, LogoutRequest/LogoutResponse, pairwise persistent
//     identifiers (section 8.3.7);
//   - Bindings (saml-bindings-2.0-os): HTTP-Redirect with DEFLATE encoding
//     and query-string signatures (3.4.4.1), HTTP-POST (3.5);
//   - Metadata (saml-metadata-2.0-os): IDPSSODescriptor, SPSSODescriptor;
//   - Profiles (saml-profiles-2.0-os): Web Browser SSO (4.1) and Single
//     Logout (4.4), front channel only;
//
// and XML Signature (xmldsig-core) with RSA-SHA256 and Exclusive XML
// Canonicalization 1.0 (xml-exc-c14n).
//
// The package knows nothing about accounts, cookies or storage: the caller
// provides the logged-in session, the login page, a server-side store for
// requests in flight and the signing keys through the small interfaces
// declared in idp.go.
//
// Attribute profiles. "atlassian" sends exactly the three claims Atlassian
// Cloud reads (givenname, surname, and name = the account's stable id).
// "generic" follows the common LDAP/eduPerson OID naming of SAML2Int, with
// NameFormat uri and a FriendlyName:
//
//	urn:oid:0.9.2342.19200300.100.1.3   mail         real, verified email
//	urn:oid:2.5.4.42                    givenName    first name
//	urn:oid:2.5.4.4                     sn           last name
//	urn:oid:2.16.840.1.113730.3.1.241   displayName  "first last"
//	urn:oid:0.9.2342.19200300.100.1.1   uid          username
//	urn:oid:1.3.6.1.4.1.5923.1.5.1.1    isMemberOf   groups (one value each)
package saml
