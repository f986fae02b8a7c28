package saml

import (
	"encoding/base64"
	"net/http"

	"github.com/beevik/etree"
)

// metadata builds the IdP's EntityDescriptor (metadata 2.4.3): one signing
// KeyDescriptor per published certificate, so that SPs that read metadata
// follow a key rollover.
func (idp *IdP) metadata(r *http.Request) ([]byte, error) {
	certs, err := idp.keys.Published(r.Context())
	if err != nil {
		return nil, err
	}
	ed := etree.NewElement("md:EntityDescriptor")
	ed.CreateAttr("xmlns:md", nsMD)
	ed.CreateAttr("xmlns:ds", nsDS)
	ed.CreateAttr("entityID", idp.entityID())
	d := ed.CreateElement("md:IDPSSODescriptor")
	d.CreateAttr("protocolSupportEnumeration", nsSAMLP)
	d.CreateAttr("WantAuthnRequestsSigned", "false")
	for _, c := range certs {
		kd := d.CreateElement("md:KeyDescriptor")
		kd.CreateAttr("use", "signing")
		kd.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
			SetText(base64.StdEncoding.EncodeToString(c.Raw))
	}
	for _, b := range []string{BindingRedirect, BindingPOST} {
		e := d.CreateElement("md:SingleLogoutService")
		e.CreateAttr("Binding", b)
		e.CreateAttr("Location", idp.sloURL())
	}
	for _, f := range []string{NameIDFormatEmail, NameIDFormatPersistent, NameIDFormatUnspecified} {
		d.CreateElement("md:NameIDFormat").SetText(f)
	}
	for _, b := range []string{BindingRedirect, BindingPOST} {
		e := d.CreateElement("md:SingleSignOnService")
		e.CreateAttr("Binding", b)
		e.CreateAttr("Location", idp.ssoURL())
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	doc.SetRoot(ed)
	doc.Indent(2)
	return doc.WriteToBytes()
}

// ServeMetadata is /saml/metadata. The IdP entity id is this URL.
func (idp *IdP) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	b, err := idp.metadata(r)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}
