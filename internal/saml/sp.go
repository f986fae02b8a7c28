package saml

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// NameIDSource says which value of the account becomes the NameID.
type NameIDSource string

// The NameID sources.
const (
	NameIDVirtualAddress NameIDSource = "virtual_address" // emailAddress format
	NameIDEmail          NameIDSource = "email"           // emailAddress format
	NameIDUsername       NameIDSource = "username"        // unspecified format
	NameIDPersistent     NameIDSource = "persistent"      // pairwise, per SP
)

// AttributeProfile names the attribute set sent to an SP.
type AttributeProfile string

// The attribute profiles (see the package documentation).
const (
	AttributesAtlassian AttributeProfile = "atlassian"
	AttributesGeneric   AttributeProfile = "generic"
)

// SignMode says which elements of a Response are signed.
type SignMode string

// The signing modes.
const (
	SignResponse  SignMode = "response"
	SignAssertion SignMode = "assertion"
	SignBoth      SignMode = "both"
)

// Endpoint is an indexed or plain SAML endpoint of a service provider.
type Endpoint struct {
	Index     int    // AssertionConsumerService index; ignored for SLO
	IsDefault bool   // isDefault="true" in metadata
	Binding   string // BindingPOST or BindingRedirect
	Location  string
	// ResponseLocation, when set on an SLO endpoint, is where LogoutResponses go.
	ResponseLocation string
}

// ServiceProvider is one registered SAML service provider. Everything the
// IdP sends somewhere comes from here, never from a request.
type ServiceProvider struct {
	Name     string // used in /saml/launch/{name}
	EntityID string
	ACS      []Endpoint // at least one; responses are sent with HTTP-POST
	SLO      []Endpoint // optional
	// Certificates verify the SP's signed requests (several during a rollover).
	Certificates []*x509.Certificate
	// AuthnRequestsSigned refuses unsigned AuthnRequests. It is set when the
	// config names a certificate_file, or when the SP's metadata says so.
	// LogoutRequests must always be signed when the SP has a certificate.
	AuthnRequestsSigned  bool
	WantAssertionsSigned bool // from metadata: the assertion is signed whatever Sign says
	NameID               NameIDSource
	Attributes           AttributeProfile
	Sign                 SignMode
	DefaultRelayState    string // RelayState of IdP-initiated (launch) responses
}

// Config is the YAML shape of one entry of saml.service_providers, for the
// config package to decode into.
type Config struct {
	Name              string `yaml:"name"`
	EntityID          string `yaml:"entity_id"`
	ACSURL            string `yaml:"acs_url"`
	SLOURL            string `yaml:"slo_url"`
	CertificateFile   string `yaml:"certificate_file"`
	MetadataFile      string `yaml:"metadata_file"`
	NameID            string `yaml:"name_id"`
	Attributes        string `yaml:"attributes"`
	Sign              string `yaml:"sign"`
	DefaultRelayState string `yaml:"default_relay_state"`
}

// FromConfig builds a ServiceProvider from its config entry, reading the
// certificate or metadata file it names. Defaults: name_id virtual_address,
// attributes generic, sign response. Errors name the offending key
// (relative to the entry).
func FromConfig(c Config) (ServiceProvider, error) {
	sp := ServiceProvider{
		Name:              c.Name,
		EntityID:          c.EntityID,
		NameID:            NameIDSource(c.NameID),
		Attributes:        AttributeProfile(c.Attributes),
		Sign:              SignMode(c.Sign),
		DefaultRelayState: c.DefaultRelayState,
	}
	if sp.NameID == "" {
		sp.NameID = NameIDVirtualAddress
	}
	if sp.Attributes == "" {
		sp.Attributes = AttributesGeneric
	}
	if sp.Sign == "" {
		sp.Sign = SignResponse
	}
	var errs []error
	if c.MetadataFile != "" {
		if c.ACSURL != "" || c.SLOURL != "" || c.CertificateFile != "" {
			errs = append(errs, errors.New("metadata_file: acs_url, slo_url and certificate_file must be empty when metadata_file is set"))
		}
		data, err := os.ReadFile(c.MetadataFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata_file: %w", err))
		} else if err := ApplyMetadata(&sp, data); err != nil {
			errs = append(errs, fmt.Errorf("metadata_file: %s: %w", c.MetadataFile, err))
		}
	} else {
		if c.ACSURL != "" {
			sp.ACS = []Endpoint{{Index: 0, IsDefault: true, Binding: BindingPOST, Location: c.ACSURL}}
		}
		if c.SLOURL != "" {
			sp.SLO = []Endpoint{{Binding: BindingRedirect, Location: c.SLOURL}}
		}
		if c.CertificateFile != "" {
			data, err := os.ReadFile(c.CertificateFile)
			if err == nil {
				var cert *x509.Certificate
				cert, err = ParseCertificatePEM(data)
				if err == nil {
					sp.Certificates = []*x509.Certificate{cert}
					sp.AuthnRequestsSigned = true
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("certificate_file: %w", err))
			}
		}
	}
	if err := sp.Validate(); err != nil {
		errs = append(errs, err)
	}
	return sp, errors.Join(errs...)
}

// ParseCertificatePEM parses the first CERTIFICATE block of data.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

var spNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// Validate checks one service provider; every mistake is listed, prefixed
// with its config key.
func (sp *ServiceProvider) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, a...))
	}
	if !spNameRE.MatchString(sp.Name) {
		bad("name", "%q must be 1-63 of a-z 0-9 _ . - (it appears in /saml/launch/{name})", sp.Name)
	}
	if sp.EntityID == "" {
		bad("entity_id", "is required")
	} else if len(sp.EntityID) > 1024 {
		bad("entity_id", "longer than 1024 characters")
	}
	if len(sp.ACS) == 0 {
		bad("acs_url", "is required (or an AssertionConsumerService in metadata_file)")
	}
	seen := map[int]bool{}
	for _, e := range sp.ACS {
		if err := checkURL(e.Location); err != nil {
			bad("acs_url", "%q: %v", e.Location, err)
		}
		if seen[e.Index] {
			bad("acs_url", "index %d used twice", e.Index)
		}
		seen[e.Index] = true
	}
	for _, e := range sp.SLO {
		if err := checkURL(e.Location); err != nil {
			bad("slo_url", "%q: %v", e.Location, err)
		}
		if e.ResponseLocation != "" {
			if err := checkURL(e.ResponseLocation); err != nil {
				bad("slo_url", "%q: %v", e.ResponseLocation, err)
			}
		}
	}
	switch sp.NameID {
	case NameIDVirtualAddress, NameIDEmail, NameIDUsername, NameIDPersistent:
	default:
		bad("name_id", "%q is not one of virtual_address, email, username, persistent", sp.NameID)
	}
	switch sp.Attributes {
	case AttributesAtlassian, AttributesGeneric:
	default:
		bad("attributes", "%q is not one of atlassian, generic", sp.Attributes)
	}
	switch sp.Sign {
	case SignResponse, SignAssertion, SignBoth:
	default:
		bad("sign", "%q is not one of response, assertion, both", sp.Sign)
	}
	if len(sp.DefaultRelayState) > maxRelayState {
		bad("default_relay_state", "longer than %d bytes", maxRelayState)
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return errors.New("must be an absolute http(s) URL without fragment")
	}
	return nil
}

// signAssertion and signResponse say what to sign, never less than the
// SP's metadata asks.
func (sp *ServiceProvider) signAssertion() bool {
	return sp.Sign == SignAssertion || sp.Sign == SignBoth || sp.WantAssertionsSigned
}

func (sp *ServiceProvider) signResponse() bool {
	return sp.Sign == SignResponse || sp.Sign == SignBoth
}

// defaultACS is the isDefault endpoint, else the lowest index.
func (sp *ServiceProvider) defaultACS() (Endpoint, bool) {
	var best *Endpoint
	for i := range sp.ACS {
		e := &sp.ACS[i]
		if e.Binding != BindingPOST {
			continue
		}
		if e.IsDefault {
			return *e, true
		}
		if best == nil || e.Index < best.Index {
			best = e
		}
	}
	if best == nil {
		return Endpoint{}, false
	}
	return *best, true
}

// sloEndpoint is where LogoutRequests (response=false) or LogoutResponses
// (response=true) go, preferring the Redirect binding.
func (sp *ServiceProvider) sloEndpoint(response bool) (binding, location string, ok bool) {
	for _, want := range []string{BindingRedirect, BindingPOST} {
		for _, e := range sp.SLO {
			if e.Binding != want {
				continue
			}
			loc := e.Location
			if response && e.ResponseLocation != "" {
				loc = e.ResponseLocation
			}
			return e.Binding, loc, true
		}
	}
	return "", "", false
}

// ApplyMetadata fills sp's entity id (when empty), ACS and SLO endpoints,
// signing certificates, AuthnRequestsSigned and WantAssertionsSigned from
// the SP's SAML metadata. When data is an EntitiesDescriptor, sp.EntityID
// must name the entity to use.
func ApplyMetadata(sp *ServiceProvider, data []byte) error {
	doc, err := parseXML(data, maxMetadataSize, true) // an operator's file: comments are fine
	if err != nil {
		return err
	}
	root := doc.Root()
	var ed *etree.Element
	switch {
	case isElem(root, nsMD, "EntityDescriptor"):
		ed = root
	case isElem(root, nsMD, "EntitiesDescriptor"):
		var all []*etree.Element
		var walk func(e *etree.Element)
		walk = func(e *etree.Element) {
			for _, c := range e.ChildElements() {
				if isElem(c, nsMD, "EntityDescriptor") {
					all = append(all, c)
				} else if isElem(c, nsMD, "EntitiesDescriptor") {
					walk(c)
				}
			}
		}
		walk(root)
		for _, c := range all {
			if sp.EntityID != "" && c.SelectAttrValue("entityID", "") == sp.EntityID {
				ed = c
			}
		}
		if ed == nil && len(all) == 1 && sp.EntityID == "" {
			ed = all[0]
		}
		if ed == nil {
			return errors.New("no EntityDescriptor for this entity_id")
		}
	default:
		return errors.New("root element is not an md:EntityDescriptor")
	}
	id := ed.SelectAttrValue("entityID", "")
	if id == "" {
		return errors.New("EntityDescriptor has no entityID")
	}
	if sp.EntityID != "" && sp.EntityID != id {
		return fmt.Errorf("entityID %q differs from entity_id %q", id, sp.EntityID)
	}
	sp.EntityID = id
	var ssod *etree.Element
	for _, c := range ed.ChildElements() {
		if isElem(c, nsMD, "SPSSODescriptor") && strings.Contains(c.SelectAttrValue("protocolSupportEnumeration", ""), nsSAMLP) {
			ssod = c
			break
		}
	}
	if ssod == nil {
		return errors.New("no SPSSODescriptor for SAML 2.0")
	}
	sp.AuthnRequestsSigned = ssod.SelectAttrValue("AuthnRequestsSigned", "") == "true" || ssod.SelectAttrValue("AuthnRequestsSigned", "") == "1"
	sp.WantAssertionsSigned = ssod.SelectAttrValue("WantAssertionsSigned", "") == "true" || ssod.SelectAttrValue("WantAssertionsSigned", "") == "1"
	sp.ACS, sp.SLO, sp.Certificates = nil, nil, nil
	for _, c := range ssod.ChildElements() {
		switch {
		case isElem(c, nsMD, "KeyDescriptor"):
			if use := c.SelectAttrValue("use", ""); use != "" && use != "signing" {
				continue
			}
			for _, kc := range c.FindElements(".//X509Certificate") {
				if kc.NamespaceURI() != nsDS {
					continue
				}
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(kc.Text()), ""))
				if err != nil {
					return fmt.Errorf("KeyDescriptor: %w", err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return fmt.Errorf("KeyDescriptor: %w", err)
				}
				sp.Certificates = append(sp.Certificates, cert)
			}
		case isElem(c, nsMD, "AssertionConsumerService"):
			b := c.SelectAttrValue("Binding", "")
			if b != BindingPOST {
				continue // artifact and PAOS are not supported
			}
			idx, err := strconv.Atoi(c.SelectAttrValue("index", ""))
			if err != nil || idx < 0 {
				return fmt.Errorf("AssertionConsumerService %q: bad index", c.SelectAttrValue("Location", ""))
			}
			sp.ACS = append(sp.ACS, Endpoint{
				Index: idx, Binding: b, Location: c.SelectAttrValue("Location", ""),
				IsDefault: c.SelectAttrValue("isDefault", "") == "true",
			})
		case isElem(c, nsMD, "SingleLogoutService"):
			b := c.SelectAttrValue("Binding", "")
			if b != BindingPOST && b != BindingRedirect {
				continue
			}
			sp.SLO = append(sp.SLO, Endpoint{Binding: b, Location: c.SelectAttrValue("Location", ""),
				ResponseLocation: c.SelectAttrValue("ResponseLocation", "")})
		}
	}
	sort.SliceStable(sp.ACS, func(i, j int) bool { return sp.ACS[i].Index < sp.ACS[j].Index })
	if len(sp.ACS) == 0 {
		return errors.New("no AssertionConsumerService with the HTTP-POST binding")
	}
	if sp.AuthnRequestsSigned && len(sp.Certificates) == 0 {
		return errors.New("AuthnRequestsSigned but no signing KeyDescriptor")
	}
	return nil
}

// Registry holds the service providers by entity id and by name.
type Registry struct {
	byEntity map[string]*ServiceProvider
	byName   map[string]*ServiceProvider
	all      []*ServiceProvider
}

// NewRegistry validates the service providers and indexes them. Every
// mistake is listed, prefixed with service_providers[i].
func NewRegistry(sps ...ServiceProvider) (*Registry, error) {
	r := &Registry{byEntity: map[string]*ServiceProvider{}, byName: map[string]*ServiceProvider{}}
	var errs []error
	for i := range sps {
		sp := sps[i]
		p := fmt.Sprintf("service_providers[%d]", i)
		if err := sp.Validate(); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("%s.%w", p, e))
			}
			continue
		}
		if _, dup := r.byEntity[sp.EntityID]; dup {
			errs = append(errs, fmt.Errorf("%s.entity_id: %q is registered twice", p, sp.EntityID))
			continue
		}
		if _, dup := r.byName[sp.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", p, sp.Name))
			continue
		}
		r.byEntity[sp.EntityID] = &sp
		r.byName[sp.Name] = &sp
		r.all = append(r.all, &sp)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// ByEntityID returns the SP with that entity id.
func (r *Registry) ByEntityID(id string) (*ServiceProvider, bool) {
	sp, ok := r.byEntity[id]
	return sp, ok
}

// ByName returns the SP with that name.
func (r *Registry) ByName(name string) (*ServiceProvider, bool) {
	sp, ok := r.byName[name]
	return sp, ok
}

// All returns the SPs in config order.
func (r *Registry) All() []*ServiceProvider { return r.all }
