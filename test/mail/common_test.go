package mail

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/internal/testlib"
)

const (
	vd        = "id.test"
	atlSender = "jira@atlassian.net"
)

// needPeers skips (fails under CI) when a program is missing, and skips
// when Postfix is among them and we are not root.
func needPeers(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		testlib.Need(t, p)
		if p == "postfix" && os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				t.Fatal("a private Postfix instance needs root")
			}
			t.Skip("a private Postfix instance needs root")
		}
	}
}

func needDkimpy(t *testing.T) {
	t.Helper()
	if !HaveDkimpy() {
		if os.Getenv("CI") != "" {
			t.Fatal("/usr/bin/python3 cannot import dkim (python3-dkim)")
		}
		t.Skip("/usr/bin/python3 cannot import dkim (python3-dkim)")
	}
}

// headerField is one header field as sent: its name and its raw bytes,
// continuation lines and final CRLF included.
type headerField struct {
	Name string
	Raw  string
}

// splitHeader returns the header fields of msg up to the empty line.
func splitHeader(msg []byte) []headerField {
	var out []headerField
	for len(msg) > 0 {
		i := bytes.Index(msg, []byte("\r\n"))
		if i <= 0 {
			break
		}
		line := string(msg[:i+2])
		msg = msg[i+2:]
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].Raw += line
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		out = append(out, headerField{Name: strings.TrimSpace(name), Raw: line})
	}
	return out
}

// headerValue is the unfolded value of the first field called name.
func headerValue(msg []byte, name string) string {
	for _, f := range splitHeader(msg) {
		if strings.EqualFold(f.Name, name) {
			_, v, _ := strings.Cut(f.Raw, ":")
			v = strings.NewReplacer("\r\n", "", "\t", " ").Replace(v)
			return strings.TrimSpace(v)
		}
	}
	return ""
}

var srs0Re = regexp.MustCompile(`^SRS0=([A-Za-z0-9+/]{4})=([A-Za-z2-7]{2})=([^=@]+)=([^@]+)@(.+)$`)

// ourDKIMRecord finds the DNS record of idbridge's DKIM key in what the
// binary prints: `idbridge keys` is documented (docs/config.md,
// forward.dkim.selector) to print it.
func ourDKIMRecord(t *testing.T, d *Idbridge) (string, bool) {
	t.Helper()
	var tried []string
	for _, args := range [][]string{{"keys", "dkim"}, {"keys", "list"}} {
		out, _ := d.CLI("", args...)
		tried = append(tried, fmt.Sprintf("$ idbridge %s\n%s", strings.Join(args, " "), out))
		if rec := extractDKIMRecord(out); rec != "" {
			return rec, true
		}
	}
	t.Logf("no DKIM record (v=DKIM1) in the output of:\n%s", strings.Join(tried, "\n"))
	return "", false
}

// extractDKIMRecord picks "v=DKIM1; …p=…" out of text, joining the quoted
// 255-byte strings of a zone-file line when they are used.
func extractDKIMRecord(text string) string {
	for _, line := range strings.Split(text, "\n") {
		i := strings.Index(line, "v=DKIM1")
		if i < 0 {
			continue
		}
		rest := line[i:]
		if strings.Contains(rest, `"`) {
			var b strings.Builder
			for _, part := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(`"`+rest, -1) {
				b.WriteString(part[1])
			}
			rest = b.String()
		}
		rest = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(rest), ")"))
		if strings.Contains(rest, "p=") {
			return rest
		}
	}
	return ""
}

func runOut(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}
