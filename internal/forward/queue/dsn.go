package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

var enhancedCode = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// status returns the RFC 3463 status for a failed recipient: the enhanced
// code in the remote reply when there is one, else 5.0.0 for a permanent
// failure and 4.4.7 (delivery time expired) for an expired one.
func status(r Recipient) string {
	if m := enhancedCode.FindString(r.LastError); m != "" {
		if r.Expired == (m[0] == '4') {
			return m
		}
	}
	if r.Expired {
		return "4.4.7"
	}
	return "5.0.0"
}

// buildDSN writes an RFC 3464 delivery status notification: a
// multipart/report with a human-readable part, a message/delivery-status
// part and the original message's header (text/rfc822-headers).
func buildDSN(hostname string, it *Item, failed []Recipient, data []byte, now time.Time) []byte {
	rb := make([]byte, 12)
	rand.Read(rb)
	boundary := "=_idbridge_" + hex.EncodeToString(rb)
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }

	w("From: Mail Delivery System <MAILER-DAEMON@%s>", hostname)
	w("To: <%s>", it.From)
	w("Subject: Undelivered Mail Returned to Sender")
	w("Date: %s", now.Format(time.RFC1123Z))
	w("Message-ID: <%s.dsn.%s@%s>", it.ID, hex.EncodeToString(rb[:4]), hostname)
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated message.")
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	w("This is the mail system at host %s.", hostname)
	w("")
	w("Your message could not be delivered to one or more recipients.")
	w("")
	for _, r := range failed {
		why := "permanent failure"
		if r.Expired {
			why = "gave up after retrying"
		}
		w("<%s>: %s: %s", reportAddr(r), why, hideAddr(r))
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", hostname)
	w("X-Idbridge-Queue-ID: %s", it.ID)
	w("Arrival-Date: %s", it.Created.Format(time.RFC1123Z))
	for _, r := range failed {
		w("")
		if r.Original != "" {
			w("Original-Recipient: rfc822; %s", r.Original)
		}
		w("Final-Recipient: rfc822; %s", reportAddr(r))
		w("Action: failed")
		w("Status: %s", status(r))
		if r.LastError != "" {
			w("Diagnostic-Code: smtp; %s", hideAddr(r))
		}
		if !r.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", r.LastAttempt.Format(time.RFC1123Z))
		}
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	b.Write(headerOf(data))
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}

// reportAddr is the recipient named in a DSN: the address the sender used
// when known, so the member's real address is not disclosed.
func reportAddr(r Recipient) string {
	if r.Original != "" {
		return r.Original
	}
	return r.Address
}

// hideAddr is the last error with the real address replaced by the
// original one.
func hideAddr(r Recipient) string {
	if r.Original == "" || r.Address == "" {
		return r.LastError
	}
	re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(r.Address))
	return re.ReplaceAllLiteralString(r.LastError, r.Original)
}

// headerOf returns the header section of msg, CRLF-terminated, without
// the blank line.
func headerOf(msg []byte) []byte {
	end := len(msg)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		end = i + 2
	} else if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		end = i + 1
	}
	h := strings.ReplaceAll(string(msg[:end]), "\r\n", "\n")
	h = strings.ReplaceAll(h, "\n", "\r\n")
	if h != "" && !strings.HasSuffix(h, "\r\n") {
		h += "\r\n"
	}
	return []byte(strings.TrimSuffix(h, "\r\n"))
}
