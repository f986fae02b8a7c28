package web

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

// The dev outbox (/dev/mail, only with Options.Dev): every mail idbridge
// wrote, newest first, with its plain-text body and clickable links. The
// end-to-end test reads verification and reset links from it.

const devMailLimit = 100

type devMailData struct {
	Mails []devMail
}

type devMail struct {
	ID       int64
	From, To string
	Subject  string
	Date     time.Time
	Body     []segment // the text/plain part, links marked
	Raw      string
}

// segment is a run of text, or a link when URL is set.
type segment struct{ Text, URL string }

func (s *Server) devMail(w http.ResponseWriter, r *http.Request) {
	list, err := s.st.ListMail(r.Context(), devMailLimit)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	var d devMailData
	for _, m := range list {
		d.Mails = append(d.Mails, parseDevMail(m))
	}
	s.render(w, r, http.StatusOK, "dev_mail", "dev_mail.title", &view{D: d})
}

func parseDevMail(m store.OutMail) devMail {
	dm := devMail{ID: m.ID, From: m.From, To: m.To, Date: m.CreatedAt, Raw: string(m.Data)}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		dm.Body = linkify(string(m.Data))
		return dm
	}
	dec := new(mime.WordDecoder)
	if subj, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		dm.Subject = subj
	}
	text, ok := plainText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0)
	if !ok {
		body, _ := io.ReadAll(msg.Body)
		text = string(body)
	}
	dm.Body = linkify(text)
	return dm
}

// plainText finds the first text/plain part of a message body, decoding its
// transfer encoding.
func plainText(ctype, cte string, body io.Reader, depth int) (string, bool) {
	if ctype == "" {
		ctype = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil || depth > 5 {
		return "", false
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return "", false
			}
			if t, ok := plainText(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1); ok {
				return t, true
			}
		}
	case mt == "text/plain":
		var r io.Reader = body
		switch strings.ToLower(strings.TrimSpace(cte)) {
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
		}
		b, err := io.ReadAll(io.LimitReader(r, 1<<20))
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}

// newlineStripper drops CR and LF, which base64 bodies are wrapped with.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

var urlInText = regexp.MustCompile(`https?://[^\s<>"']+`)

// linkify splits text into plain runs and http(s) links; the template
// escapes both.
func linkify(text string) []segment {
	var out []segment
	last := 0
	for _, loc := range urlInText.FindAllStringIndex(text, -1) {
		u := strings.TrimRight(text[loc[0]:loc[1]], ".,;:!?)")
		end := loc[0] + len(u)
		if loc[0] > last {
			out = append(out, segment{Text: text[last:loc[0]]})
		}
		out = append(out, segment{Text: u, URL: u})
		last = end
	}
	if last < len(text) {
		out = append(out, segment{Text: text[last:]})
	}
	return out
}
