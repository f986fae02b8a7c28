package saml

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFromConfig(t *testing.T) {
	testKeys()
	d := t.TempDir()
	cert := writeFile(t, d, "sp.pem", certPEM(spKP.Cert))
	sp, err := FromConfig(Config{Name: "atlassian", EntityID: atlassianEntity, ACSURL: atlassianACS,
		CertificateFile: cert, NameID: "virtual_address", Attributes: "atlassian", Sign: "response"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.ACS) != 1 || sp.ACS[0].Location != atlassianACS || !sp.AuthnRequestsSigned || len(sp.Certificates) != 1 {
		t.Errorf("%+v", sp)
	}
	_, err = FromConfig(Config{Name: "Bad Name", ACSURL: "ftp://x", NameID: "mail", Attributes: "all", Sign: "never",
		CertificateFile: filepath.Join(d, "missing.pem")})
	for _, want := range []string{"name:", "entity_id: is required", "acs_url:", "name_id:", "attributes:", "sign:", "certificate_file:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestApplyMetadataAndRegistry(t *testing.T) {
	meta, err := os.ReadFile("testdata/sp-metadata.xml")
	if err != nil {
		t.Fatal(err)
	}
	sp := ServiceProvider{Name: "wiki", NameID: NameIDPersistent, Attributes: AttributesGeneric, Sign: SignResponse}
	if err := ApplyMetadata(&sp, meta); err != nil {
		t.Fatal(err)
	}
	if sp.EntityID != "https://wiki.test/sp" || len(sp.ACS) != 2 || sp.ACS[0].Index != 0 || !sp.ACS[1].IsDefault ||
		len(sp.SLO) != 1 || len(sp.Certificates) != 1 || !sp.WantAssertionsSigned || !sp.AuthnRequestsSigned {
		t.Errorf("%+v", sp)
	}
	if acs, _ := sp.defaultACS(); acs.Index != 3 {
		t.Errorf("default ACS %+v", acs)
	}
	if !sp.signAssertion() || !sp.signResponse() {
		t.Error("WantAssertionsSigned must add an assertion signature")
	}
	if err := ApplyMetadata(&ServiceProvider{}, []byte(`<!DOCTYPE x><x/>`)); err == nil {
		t.Error("DTD in metadata accepted")
	}
	_, err = NewRegistry(sp, sp, atlassianSP())
	if err == nil || !strings.Contains(err.Error(), "service_providers[1].entity_id") {
		t.Errorf("duplicate: %v", err)
	}
	r, err := NewRegistry(sp, atlassianSP())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.ByName("atlassian"); !ok || got.EntityID != atlassianEntity {
		t.Error("ByName")
	}
	if _, ok := r.ByEntityID("https://wiki.test/sp"); !ok {
		t.Error("ByEntityID")
	}
}
