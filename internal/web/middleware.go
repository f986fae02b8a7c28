package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

// reqState is what the outer middleware learns about a request and keeps in
// its context: the request id, a logger that carries it, and (lazily) the
// logged-in session.
type reqState struct {
	id  string
	log *slog.Logger

	sessOnce sync.Once
	sess     store.Session
	acct     store.Account
	loggedIn bool
}

type ctxKey struct{}

func stateOf(ctx context.Context) *reqState {
	st, _ := ctx.Value(ctxKey{}).(*reqState)
	return st
}

// Logger returns the request's logger (it carries request_id), or
// slog.Default() outside a request served by this package.
func Logger(ctx context.Context) *slog.Logger { return logger(ctx) }

func logger(ctx context.Context) *slog.Logger {
	if st := stateOf(ctx); st != nil {
		return st.log
	}
	return slog.Default()
}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// observe is the outermost middleware: request id (also sent back as
// X-Request-Id), a logger carrying it in the context, security headers, one
// access-log line and an HTTPDuration observation per request, and a 500
// page instead of a dropped connection when a handler panics.
//
// The access log names the path and never the query string: tokens travel
// there.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		st := &reqState{id: id, log: s.log.With("request_id", id)}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))

		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", s.csp)
		h.Set("Cache-Control", "no-store")

		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				st.log.Error("panic", "panic", v)
				if !rec.wrote {
					http.Error(rec, "internal error", http.StatusInternalServerError)
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if s.met != nil {
				s.met.HTTPDuration.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
			}
			st.log.Info("http",
				"method", r.Method,
				"path", r.URL.Path,
				"route", route,
				"status", status,
				"duration_ms", float64(d.Microseconds())/1000,
				"client", s.clientIP(r),
			)
		}()
		next.ServeHTTP(rec, r)
	})
}

func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (Flush, deadlines).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ClientIP returns the address of the client that sent r, believing
// X-Forwarded-For only from Options.TrustedProxies.
func (s *Server) ClientIP(r *http.Request) netip.Addr { return clientIP(r, s.opts.TrustedProxies) }

// clientIP is ClientIP as the string account and the audit trail take.
func (s *Server) clientIP(r *http.Request) string {
	a := s.ClientIP(r)
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
