package saml

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// Signature algorithms accepted on query-string signatures (bindings 3.4.4.1).
// SHA-1 is refused.
var sigAlgs = map[string]crypto.Hash{
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": crypto.SHA256,
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": crypto.SHA384,
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": crypto.SHA512,
}

const sigAlgRSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"

// inbound is a SAML protocol message as received, before its XML is parsed.
type inbound struct {
	Binding    string // BindingRedirect or BindingPOST
	Param      string // "SAMLRequest" or "SAMLResponse"
	XML        []byte
	RelayState string
	// HTTP-Redirect signature: SigAlg, Signature and the exact octets signed.
	SigAlg    string
	Signature []byte
	Signed    []byte
}

// readInbound decodes a message from the HTTP-Redirect (GET) or HTTP-POST
// binding, enforcing the size limits before and after decoding.
func readInbound(w http.ResponseWriter, r *http.Request) (*inbound, error) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return readRedirect(r.URL.RawQuery)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 2*maxEncodedSize)
		if err := r.ParseForm(); err != nil {
			return nil, errTooLarge
		}
		in := &inbound{Binding: BindingPOST}
		for _, p := range []string{"SAMLRequest", "SAMLResponse"} {
			if v, ok := r.PostForm[p]; ok {
				if in.Param != "" || len(v) != 1 {
					return nil, errors.New("exactly one SAMLRequest or SAMLResponse is needed")
				}
				in.Param = p
				if len(v[0]) > maxEncodedSize {
					return nil, errTooLarge
				}
				raw, err := base64.StdEncoding.DecodeString(stripSpace(v[0]))
				if err != nil {
					return nil, fmt.Errorf("%s is not base64", p)
				}
				if len(raw) > maxMessageSize {
					return nil, errTooLarge
				}
				in.XML = raw
			}
		}
		if in.Param == "" {
			return nil, errors.New("no SAMLRequest or SAMLResponse")
		}
		if rs := r.PostForm["RelayState"]; len(rs) > 1 {
			return nil, errors.New("more than one RelayState")
		} else if len(rs) == 1 {
			in.RelayState = rs[0]
		}
		if len(in.RelayState) > maxRelayState {
			return nil, errors.New("RelayState longer than 1 KiB")
		}
		return in, nil
	}
	return nil, errors.New("method not allowed")
}

// readRedirect decodes the HTTP-Redirect binding from a raw query string,
// keeping the raw (still URL-encoded) values for the signature check.
func readRedirect(rawQuery string) (*inbound, error) {
	if len(rawQuery) > 2*maxEncodedSize {
		return nil, errTooLarge
	}
	raw := map[string]string{}
	for _, kv := range strings.Split(rawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, errors.New("bad query string")
		}
		switch key {
		case "SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature":
			if _, dup := raw[key]; dup {
				return nil, fmt.Errorf("%s given twice", key)
			}
			raw[key] = v
		}
	}
	in := &inbound{Binding: BindingRedirect}
	dec := func(key string) (string, error) {
		s, err := url.QueryUnescape(raw[key])
		if err != nil {
			return "", fmt.Errorf("bad %s encoding", key)
		}
		return s, nil
	}
	_, hasReq := raw["SAMLRequest"]
	_, hasResp := raw["SAMLResponse"]
	switch {
	case hasReq && hasResp:
		return nil, errors.New("both SAMLRequest and SAMLResponse")
	case hasReq:
		in.Param = "SAMLRequest"
	case hasResp:
		in.Param = "SAMLResponse"
	default:
		return nil, errors.New("no SAMLRequest or SAMLResponse")
	}
	if len(raw[in.Param]) > maxEncodedSize {
		return nil, errTooLarge
	}
	b64, err := dec(in.Param)
	if err != nil {
		return nil, err
	}
	deflated, err := base64.StdEncoding.DecodeString(stripSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64", in.Param)
	}
	in.XML, err = inflate(deflated)
	if err != nil {
		return nil, err
	}
	if _, ok := raw["RelayState"]; ok {
		if in.RelayState, err = dec("RelayState"); err != nil {
			return nil, err
		}
		if len(in.RelayState) > maxRelayState {
			return nil, errors.New("RelayState longer than 1 KiB")
		}
	}
	if _, ok := raw["Signature"]; ok {
		if in.SigAlg, err = dec("SigAlg"); err != nil {
			return nil, err
		}
		s, err := dec("Signature")
		if err != nil {
			return nil, err
		}
		if in.Signature, err = base64.StdEncoding.DecodeString(stripSpace(s)); err != nil {
			return nil, errors.New("Signature is not base64")
		}
		// Bindings 3.4.4.1: the octets signed are the parameters as they
		// appear in the query string, in this order.
		signed := in.Param + "=" + raw[in.Param]
		if rs, ok := raw["RelayState"]; ok {
			signed += "&RelayState=" + rs
		}
		signed += "&SigAlg=" + raw["SigAlg"]
		in.Signed = []byte(signed)
	}
	return in, nil
}

// inflate undoes the DEFLATE encoding, reading at most maxMessageSize+1
// bytes so that a deflate bomb costs nothing.
func inflate(b []byte) ([]byte, error) {
	fr := flate.NewReader(bytes.NewReader(b))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, maxMessageSize+1))
	if len(out) > maxMessageSize {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, errors.New("bad DEFLATE encoding")
	}
	return out, nil
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// errUnsigned means the message carries no signature.
var errUnsigned = errors.New("message is not signed")

// verifyRedirect checks a query-string signature against the SP's certificates.
func verifyRedirect(in *inbound, certs []*x509.Certificate) error {
	if in.Signature == nil {
		return errUnsigned
	}
	h, ok := sigAlgs[in.SigAlg]
	if !ok {
		return fmt.Errorf("SigAlg %q is not accepted", in.SigAlg)
	}
	d := h.New()
	d.Write(in.Signed)
	sum := d.Sum(nil)
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && rsa.VerifyPKCS1v15(pub, h, sum, in.Signature) == nil {
			return nil
		}
	}
	return errors.New("bad signature")
}

// verifyEnveloped checks the enveloped XML signature of root and returns the
// element as signed (canonical, re-parsed), from which every value must be
// read. Certificate validity dates are not checked: SAML metadata trust is
// by key (Metadata Interoperability profile).
func verifyEnveloped(root *etree.Element, certs []*x509.Certificate) (*etree.Element, error) {
	sig, err := onlyChild(root, nsDS, "Signature")
	if err != nil {
		return nil, err
	}
	if sig == nil {
		return nil, errUnsigned
	}
	for _, c := range certs {
		vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{c}})
		vc.Clock = dsig.NewFakeClockAt(c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) / 2))
		if signed, err := vc.Validate(root); err == nil {
			return signed, nil
		}
	}
	return nil, errors.New("bad signature")
}

// signer signs XML and query strings with the active key.
type signer struct {
	kp KeyPair
}

// signEnveloped adds an enveloped RSA-SHA256, exclusive-c14n signature to
// el, placed right after its Issuer as the SAML schema requires.
func (s signer) signEnveloped(el *etree.Element) error {
	ctx, err := dsig.NewSigningContext(s.kp.Key, [][]byte{s.kp.Cert.Raw})
	if err != nil {
		return err
	}
	ctx.Hash = crypto.SHA256
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	pos := 0
	for i, tok := range el.Child {
		if c, ok := tok.(*etree.Element); ok && c.Tag == "Issuer" {
			pos = i + 1
			break
		}
	}
	el.InsertChildAt(pos, sig)
	return nil
}

// redirectURL encodes msg for the HTTP-Redirect binding with a query-string
// signature, appended to location (which may already have a query).
func (s signer) redirectURL(location, param string, msg *etree.Element, relayState string) (string, error) {
	doc := etree.NewDocument()
	doc.SetRoot(msg)
	xml, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(xml)
	fw.Close()
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	q += "&SigAlg=" + url.QueryEscape(sigAlgRSASHA256)
	sum := crypto.SHA256.New()
	sum.Write([]byte(q))
	sigv, err := rsa.SignPKCS1v15(rand.Reader, s.kp.Key, crypto.SHA256, sum.Sum(nil))
	if err != nil {
		return "", err
	}
	q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sigv))
	sep := "?"
	if strings.Contains(location, "?") {
		sep = "&"
	}
	return location + sep + q, nil
}

// encodeXML serializes a message for the HTTP-POST binding.
func encodeXML(msg *etree.Element) (string, error) {
	doc := etree.NewDocument()
	doc.SetRoot(msg)
	b, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
