package main

import (
	"regexp"
	"strings"
	"testing"
)

// keys add → activate → retire on a --dev data dir, for SAML and DKIM keys;
// keys dkim prints a TXT record split into strings of at most 255 bytes.
func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	keysCmd := func(args ...string) (int, string) {
		t.Helper()
		code, out, errs := runCmd(t, "", append(append([]string{"keys"}, args...), "--data-dir", dir)...)
		return code, out + errs
	}
	idRe := regexp.MustCompile(`added (?:dkim )?key ([0-9a-f]+)`)
	for _, purpose := range []string{"saml", "dkim"} {
		code, out := keysCmd("add", "--purpose", purpose)
		m := idRe.FindStringSubmatch(out)
		if code != exitOK || m == nil {
			t.Fatalf("%s add: %d %s", purpose, code, out)
		}
		first := m[1]
		if code, out := keysCmd("list", "--purpose", purpose); code != exitOK || !row(out, first, purpose, "next") {
			t.Fatalf("%s list after add:\n%s", purpose, out)
		}
		if code, out := keysCmd("activate", first, "--purpose", purpose); code != exitOK {
			t.Fatalf("%s activate: %s", purpose, out)
		}
		code, out = keysCmd("add", "--purpose", purpose)
		second := idRe.FindStringSubmatch(out)[1]
		keysCmd("activate", second, "--purpose", purpose)
		if code, out := keysCmd("retire", second, "--purpose", purpose); code != exitFailure || !strings.Contains(out, "active") {
			t.Errorf("%s: retiring the active key: %d %s", purpose, code, out)
		}
		if code, out := keysCmd("retire", first, "--purpose", purpose); code != exitOK {
			t.Errorf("%s retire: %s", purpose, out)
		}
		if _, out := keysCmd("list", "--purpose", purpose); strings.Contains(out, first) || !row(out, second, purpose, "active") {
			t.Errorf("%s list after retire:\n%s", purpose, out)
		}
		code, out = keysCmd("show", second, "--purpose", purpose)
		if code != exitOK {
			t.Fatalf("%s show: %s", purpose, out)
		}
		if purpose == "saml" && !strings.Contains(out, "BEGIN CERTIFICATE") {
			t.Errorf("saml show has no certificate:\n%s", out)
		}
		if purpose == "dkim" && !strings.Contains(out, "._domainkey.id.localhost. IN TXT") {
			t.Errorf("dkim show has no record:\n%s", out)
		}
	}
	if code, out := keysCmd("list", "--purpose", "oidc"); code != exitUsage {
		t.Errorf("unknown purpose: %d %s", code, out)
	}
	// Without forward.dkim.selector there is no record to publish.
	if code, out := keysCmd("dkim"); code != exitFailure || !strings.Contains(out, "forward.dkim.selector") {
		t.Errorf("keys dkim without a selector: %d %s", code, out)
	}
}

func TestDKIMRecordSplit(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCmd(t, "", "keys", "add", "--purpose", "dkim", "--data-dir", dir)
	if code != exitOK {
		t.Fatal(errs)
	}
	id := regexp.MustCompile(`key ([0-9a-f]+)`).FindStringSubmatch(out)[1]
	_, out, _ = runCmd(t, "", "keys", "show", id, "--purpose", "dkim", "--data-dir", dir)
	strs := regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(out, -1)
	if len(strs) < 2 {
		t.Fatalf("a 2048-bit key record should need several strings:\n%s", out)
	}
	var joined string
	for _, s := range strs {
		if len(s[1]) > 255 {
			t.Errorf("TXT string of %d bytes", len(s[1]))
		}
		joined += s[1]
	}
	if !strings.HasPrefix(joined, "v=DKIM1; k=rsa; p=MII") {
		t.Errorf("record: %s", joined)
	}
}

// row reports whether the keys list in out has a row id, purpose, state.
func row(out, id, purpose, state string) bool {
	return regexp.MustCompile(`(?m)^` + id + `\s+` + purpose + `\s+` + state + `\s`).MatchString(out)
}
