// Package saml holds the acceptance tests of the SAML identity provider
// (issue 3), run against the real binary: TestMain builds ./cmd/idbridge
// (or uses IDBRIDGE_E2E_BINARY), each test starts `idbridge serve --config
// FILE` on a free port with its own SQLite store, and drives it with real
// service providers (Apache + mod_auth_mellon, SimpleSAMLphp, headless
// Chromium), xmlsec1, and an Atlassian-shaped double built from Atlassian's
// published requirements. Absent peers skip a test, or fail it under CI=true
// (internal/testlib.Need). Fixtures: testdata/, made by testdata/gen.sh.
package saml
