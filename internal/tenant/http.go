package tenant

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/bulwark-ledger/bulwark/internal/problem"
)

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the authenticated principal of a request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// KeyFromRequest reads the API key from "Authorization: Bearer <key>" or
// the "X-Api-Key" header.
func KeyFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimSpace(h[len("Bearer "):])
	}
	return r.Header.Get("X-Api-Key")
}

// Middleware authenticates every request that reaches next; unauthenticated
// requests get 401 problem+json.
func (s *Store) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authenticate(r.Context(), KeyFromRequest(r))
		if errors.Is(err, ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark"`)
			problem.Send(w, problem.CodeUnauthenticated, "a valid API key is required (Authorization: Bearer <key>)")
			return
		}
		if err != nil {
			problem.Send(w, problem.CodeAuthUnavailable, "the key store is unreachable")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// RequireTenant returns the request's tenant, or answers 403 (for the admin
// key, which acts for no tenant) and returns false.
func RequireTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	p, _ := FromContext(r.Context())
	if p.TenantID == "" {
		problem.Send(w, problem.CodeTenantKeyRequired, "this endpoint needs a tenant API key, not the admin key")
		return "", false
	}
	return p.TenantID, true
}

// RequireAdmin answers 403 unless the request carries the admin key.
func RequireAdmin(w http.ResponseWriter, r *http.Request) bool {
	p, _ := FromContext(r.Context())
	if !p.Admin {
		problem.Send(w, problem.CodeAdminKeyRequired, "this endpoint needs the admin key")
		return false
	}
	return true
}

// Register mounts the admin endpoints for tenants and keys on mux.
func (s *Store) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/admin/tenants", s.handleCreateTenant)
	mux.HandleFunc("POST /v1/admin/tenants/{tenant}/api-keys", s.handleCreateKey)
	mux.HandleFunc("DELETE /v1/admin/tenants/{tenant}/api-keys/{key}", s.handleRevokeKey)
}

func (s *Store) handleCreateTenant(w http.ResponseWriter, r *http.Request) {
	if !RequireAdmin(w, r) {
		return
	}
	var in struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if !problem.ReadJSON(w, r, decodeLimit, &in) {
		return
	}
	switch err := s.CreateTenant(r.Context(), in.ID, in.Name); {
	case errors.Is(err, ErrInvalid):
		problem.Send(w, problem.CodeInvalidTenantId, err.Error())
	case errors.Is(err, ErrExists):
		problem.Send(w, problem.CodeTenantExists, err.Error())
	case err != nil:
		problem.Send(w, problem.CodeInternal, "could not create tenant")
	default:
		problem.WriteJSON(w, http.StatusCreated, map[string]string{"id": in.ID, "name": in.Name})
	}
}

func (s *Store) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	if !RequireAdmin(w, r) {
		return
	}
	var in KeyOptions
	if r.ContentLength != 0 && !problem.ReadJSON(w, r, decodeLimit, &struct {
		Sources      *[]string `json:"sources"`
		TrafficTypes *[]string `json:"traffic_types"`
	}{&in.Sources, &in.TrafficTypes}) {
		return
	}
	tid := r.PathValue("tenant")
	id, secret, err := s.CreateKey(r.Context(), tid, in)
	switch {
	case errors.Is(err, ErrNotFound):
		problem.Send(w, problem.CodeTenantNotFound, err.Error())
	case err != nil:
		problem.Send(w, problem.CodeInternal, "could not create key")
	default:
		problem.WriteJSON(w, http.StatusCreated, map[string]any{"id": id, "tenant_id": tid, "key": secret,
			"sources": in.Sources, "traffic_types": in.TrafficTypes})
	}
}

func (s *Store) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	if !RequireAdmin(w, r) {
		return
	}
	err := s.RevokeKey(r.Context(), r.PathValue("tenant"), r.PathValue("key"))
	switch {
	case errors.Is(err, ErrNotFound):
		problem.Send(w, problem.CodeKeyNotFound, err.Error())
	case err != nil:
		problem.Send(w, problem.CodeInternal, "could not revoke key")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// decodeLimit bounds admin request bodies.
const decodeLimit = 64 << 10
