package saml

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/beevik/etree"
)

// Single logout, front channel: the browser visits each participant in
// turn (a redirect chain, HTTP-Redirect binding, signed LogoutRequests);
// each SP answers with a LogoutResponse to /saml/slo, which moves on to the
// next one. The chain's state is kept in Pending under the id of the
// LogoutRequest in flight, found again by the response's InResponseTo.

// pendingLogout is a checked LogoutRequest from an SP, kept across the 303
// that brings the session cookie.
type pendingLogout struct {
	SP             string   `json:"sp"`
	RequestID      string   `json:"id"`
	NameID         string   `json:"nameid"`
	SessionIndexes []string `json:"si,omitempty"`
	RelayState     string   `json:"rs,omitempty"`
	Signed         bool     `json:"signed,omitempty"`
}

// logoutChain is the state of a logout in progress.
type logoutChain struct {
	Remaining []Participant `json:"remaining,omitempty"`
	// Waiting is the SP whose LogoutResponse is expected.
	Waiting string `json:"waiting,omitempty"`
	// ReturnTo ends an IdP-initiated logout (a local path).
	ReturnTo string `json:"return_to,omitempty"`
	// Reply ends an SP-initiated logout: a LogoutResponse to that SP.
	Reply *pendingLogout `json:"reply,omitempty"`
	// Partial is set when a participant could not be logged out.
	Partial bool `json:"partial,omitempty"`
}

// LogoutParticipants starts the front-channel logout of every SP that got
// an assertion in the session and has a Redirect-binding SLO endpoint. It
// returns where to send the browser next (303): the first SP's signed
// LogoutRequest, or returnTo (a local path) when there is none; the chain
// ends on returnTo. Call it before ending the session (it reads the
// session's participants), then end the session, then redirect.
func (idp *IdP) LogoutParticipants(ctx context.Context, sessionID, returnTo string) (string, error) {
	if !localPath(returnTo) {
		return "", fmt.Errorf("saml: returnTo %q is not a local path", returnTo)
	}
	parts, err := idp.sessions.Participants(ctx, sessionID)
	if err != nil {
		return "", fmt.Errorf("saml: participants: %w", err)
	}
	st := &logoutChain{Remaining: parts, ReturnTo: returnTo}
	next, err := idp.nextLogoutStep(ctx, st)
	if err != nil {
		return "", err
	}
	if next.form != nil {
		return "", errors.New("saml: unexpected POST step") // only replies are posted
	}
	return next.url, nil
}

func localPath(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "//") && !strings.ContainsAny(p, "\\\r\n")
}

// logoutStep is where the browser goes next: a URL (303) or a POST form.
type logoutStep struct {
	url  string
	form *postForm
}

type postForm struct {
	sp                        *ServiceProvider
	action, param, relayState string
	msg                       *etree.Element
}

// nextLogoutStep sends a LogoutRequest to the next participant that has a
// Redirect SLO endpoint, or ends the chain.
func (idp *IdP) nextLogoutStep(ctx context.Context, st *logoutChain) (logoutStep, error) {
	for len(st.Remaining) > 0 {
		p := st.Remaining[0]
		st.Remaining = st.Remaining[1:]
		sp, ok := idp.sps.ByEntityID(p.SP)
		if !ok {
			continue
		}
		binding, loc, ok := sp.sloEndpoint(false)
		if !ok || binding != BindingRedirect {
			if ok {
				idp.log.WarnContext(ctx, "saml logout: only HTTP-Redirect SLO endpoints are called", "sp", sp.Name)
				st.Partial = true
			}
			continue
		}
		kp, err := idp.keys.Active(ctx)
		if err != nil {
			return logoutStep{}, fmt.Errorf("signing key: %w", err)
		}
		req := idp.newProtocolMessage("LogoutRequest", loc, "")
		req.CreateAttr("NotOnOrAfter", samlTime(idp.now().Add(assertionLifetime)))
		idp.addNameID(req, sp, p.NameID, p.NameIDFormat)
		if p.SessionIndex != "" {
			req.CreateElement("samlp:SessionIndex").SetText(p.SessionIndex)
		}
		id := req.SelectAttrValue("ID", "")
		st.Waiting = sp.EntityID
		if err := idp.putChain(ctx, id, st); err != nil {
			return logoutStep{}, err
		}
		u, err := signer{kp}.redirectURL(loc, "SAMLRequest", req, "")
		if err != nil {
			return logoutStep{}, err
		}
		idp.log.InfoContext(ctx, "saml logout request sent", "sp", sp.Name)
		return logoutStep{url: u}, nil
	}
	if st.Reply == nil {
		return logoutStep{url: st.ReturnTo}, nil
	}
	return idp.logoutReply(ctx, st.Reply, st.Partial)
}

func (idp *IdP) putChain(ctx context.Context, requestID string, st *logoutChain) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return idp.pending.Put(ctx, keyLogPrefix+requestID, b, idp.now().Add(pendingTTL))
}

// logoutReply builds the LogoutResponse to an SP that asked to log out.
func (idp *IdP) logoutReply(ctx context.Context, p *pendingLogout, partial bool) (logoutStep, error) {
	sp, ok := idp.sps.ByEntityID(p.SP)
	if !ok {
		return logoutStep{}, refuse("unknown service provider")
	}
	binding, loc, ok := sp.sloEndpoint(true)
	if !ok {
		return logoutStep{}, refuse("%s has no SingleLogoutService", sp.Name)
	}
	kp, err := idp.keys.Active(ctx)
	if err != nil {
		return logoutStep{}, fmt.Errorf("signing key: %w", err)
	}
	resp := idp.newProtocolMessage("LogoutResponse", loc, p.RequestID)
	if partial {
		addStatus(resp, StatusSuccess, StatusPartialLogout)
	} else {
		addStatus(resp, StatusSuccess, "")
	}
	if binding == BindingRedirect {
		u, err := signer{kp}.redirectURL(loc, "SAMLResponse", resp, p.RelayState)
		return logoutStep{url: u}, err
	}
	if err := (signer{kp}).signEnveloped(resp); err != nil {
		return logoutStep{}, err
	}
	return logoutStep{form: &postForm{sp: sp, action: loc, param: "SAMLResponse", msg: resp, relayState: p.RelayState}}, nil
}

// ServeSLO is /saml/slo: LogoutRequests from SPs (Redirect or POST; a POST
// continues with a 303 to a GET that carries the session cookie) and the
// LogoutResponses of a logout chain.
func (idp *IdP) ServeSLO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodGet && r.URL.Query().Has("continue") {
		var p pendingLogout
		if err := idp.unstash(ctx, keySLOPrefix, r.URL.Query().Get("continue"), &p); err != nil {
			idp.fail(w, r, err)
			return
		}
		idp.finishSLO(w, r, p)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	in, err := readInbound(w, r)
	if err != nil {
		idp.fail(w, r, refuse("%v", err))
		return
	}
	if in.Param == "SAMLResponse" {
		idp.handleLogoutResponse(w, r, in)
		return
	}
	req, err := idp.parseLogoutRequest(in)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	p := pendingLogout{SP: req.SP.EntityID, RequestID: req.ID, NameID: req.NameID,
		SessionIndexes: req.SessionIndexes, RelayState: req.RelayState, Signed: req.Signed}
	if r.Method == http.MethodPost {
		id, err := idp.stash(ctx, keySLOPrefix, p)
		if err != nil {
			idp.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/saml/slo?continue="+id, http.StatusSeeOther)
		return
	}
	idp.finishSLO(w, r, p)
}

// finishSLO ends the browser's session when the LogoutRequest is about it,
// logs out the session's other participants, then answers the SP.
func (idp *IdP) finishSLO(w http.ResponseWriter, r *http.Request, p pendingLogout) {
	ctx := r.Context()
	sp, ok := idp.sps.ByEntityID(p.SP)
	if !ok {
		idp.fail(w, r, refuse("unknown service provider"))
		return
	}
	st := &logoutChain{Reply: &p}
	if s, ok := idp.sessions.Current(r); ok {
		parts, err := idp.sessions.Participants(ctx, s.ID)
		if err != nil {
			idp.fail(w, r, err)
			return
		}
		if idp.logoutMatches(sp, s, parts, p) {
			if err := idp.sessions.End(ctx, s.ID); err != nil {
				idp.fail(w, r, err)
				return
			}
			idp.log.InfoContext(ctx, "saml logout from service provider", "audit", true, "sp", sp.Name, "account", s.Principal.ID)
			for _, q := range parts {
				if q.SP != sp.EntityID {
					st.Remaining = append(st.Remaining, q)
				}
			}
		} else {
			idp.log.WarnContext(ctx, "saml logout request is not about the current session", "sp", sp.Name)
		}
	}
	next, err := idp.nextLogoutStep(ctx, st)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	idp.goTo(w, r, next)
}

// logoutMatches reports whether the LogoutRequest names the session's member.
// An unsigned request (from an SP without a certificate) must also carry the
// SessionIndex we gave that SP: the NameID alone is public (a virtual
// address), and any site could otherwise log the member out by sending the
// browser here.
func (idp *IdP) logoutMatches(sp *ServiceProvider, s Session, parts []Participant, p pendingLogout) bool {
	if !p.Signed && len(p.SessionIndexes) == 0 {
		return false
	}
	for _, q := range parts {
		if q.SP == sp.EntityID && q.NameID == p.NameID &&
			(len(p.SessionIndexes) == 0 || slices.Contains(p.SessionIndexes, q.SessionIndex)) {
			return true
		}
	}
	v, _, err := idp.nameID(sp, s.Principal)
	return err == nil && v == p.NameID &&
		(len(p.SessionIndexes) == 0 || slices.Contains(p.SessionIndexes, idp.sessionIndex(s.ID)))
}

// handleLogoutResponse moves a logout chain on.
func (idp *IdP) handleLogoutResponse(w http.ResponseWriter, r *http.Request, in *inbound) {
	ctx := r.Context()
	resp, err := idp.parseLogoutResponse(in)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	var st logoutChain
	b, err := idp.pending.Take(ctx, keyLogPrefix+resp.InResponseTo)
	if err != nil || resp.InResponseTo == "" || json.Unmarshal(b, &st) != nil {
		idp.fail(w, r, refuse("LogoutResponse to no logout in progress"))
		return
	}
	if st.Waiting != resp.SP.EntityID {
		idp.fail(w, r, refuse("LogoutResponse from the wrong service provider"))
		return
	}
	if resp.Status != StatusSuccess {
		st.Partial = true
		idp.log.WarnContext(ctx, "saml logout failed at service provider", "sp", resp.SP.Name, "status", resp.Status)
	}
	next, err := idp.nextLogoutStep(ctx, &st)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	idp.goTo(w, r, next)
}

func (idp *IdP) goTo(w http.ResponseWriter, r *http.Request, s logoutStep) {
	if s.form != nil {
		idp.postMessage(w, r, s.form.sp, s.form.action, s.form.param, s.form.msg, s.form.relayState)
		return
	}
	http.Redirect(w, r, s.url, http.StatusSeeOther)
}
