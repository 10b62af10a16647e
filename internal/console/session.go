package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// CookieName is the console's session cookie. It holds a random session id
// only: the admin key stays on the server, in the session it opened.
const CookieName = "bulwark_console"

// MaxSessions bounds the sessions one process holds. Only the admin key
// opens a session, so the table fills only if operators sign in hundreds
// of times within the idle timeout without signing out; then the session
// closest to expiry is dropped (its holder signs in again).
const MaxSessions = 256

// session is one signed-in browser.
type session struct {
	key      string // the admin key presented at sign-in, sent on forwarded admin calls
	csrf     string // synchronizer token, required on every change
	operator string // recorded in the audit trail's operator field
	created  time.Time
	expires  time.Time // slides with use, never past created+max
}

// sessions is the server-side session table, keyed by the SHA-256 of the
// cookie's id, so a lookup's timing says nothing about valid ids.
type sessions struct {
	idle, max time.Duration
	now       func() time.Time

	mu   sync.Mutex
	byID map[[32]byte]*session
}

func newSessions(idle, max time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, max: max, now: now, byID: make(map[[32]byte]*session)}
}

// token returns 32 random bytes, base64url: 256 bits, unguessable.
func token() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24 aborts the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// open starts a session for key and returns its cookie id.
func (s *sessions) open(key, operator string) (id string, sess session) {
	id = token()
	now := s.now()
	sess = session{key: key, csrf: token(), operator: operator, created: now, expires: now.Add(s.idle)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	if len(s.byID) >= MaxSessions {
		var oldest [32]byte
		var first time.Time
		for h, v := range s.byID {
			if first.IsZero() || v.expires.Before(first) {
				oldest, first = h, v.expires
			}
		}
		delete(s.byID, oldest)
	}
	cp := sess
	s.byID[sha256.Sum256([]byte(id))] = &cp
	return id, sess
}

// pruneLocked drops expired sessions.
func (s *sessions) pruneLocked(now time.Time) {
	for h, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, h)
		}
	}
}

// get returns the live session of id and slides its expiry.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	h := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[h]
	if !ok {
		return session{}, false
	}
	if !now.Before(v.expires) {
		delete(s.byID, h)
		return session{}, false
	}
	v.expires = now.Add(s.idle)
	if limit := v.created.Add(s.max); v.expires.After(limit) {
		v.expires = limit
	}
	return *v, true
}

// close ends the session of id.
func (s *sessions) close(id string) {
	h := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.byID, h)
	s.mu.Unlock()
}

// fromRequest returns the request's session id and live session.
func (s *sessions) fromRequest(r *http.Request) (string, session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", session{}, false
	}
	sess, ok := s.get(c.Value)
	return c.Value, sess, ok
}

// csrfOK compares the request's X-CSRF-Token with the session's in
// constant time.
func csrfOK(r *http.Request, sess session) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) == 1
}

// CSRFHeader carries the session's synchronizer token on every change.
const CSRFHeader = "X-CSRF-Token"

// setCookie sets (or, with maxAge < 0, clears) the session cookie:
// HTTP-only (scripts cannot read it), SameSite=Strict (no other site's
// page sends it), scoped to /console, Secure when the request came over
// TLS.
func setCookie(w http.ResponseWriter, r *http.Request, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/console", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}
