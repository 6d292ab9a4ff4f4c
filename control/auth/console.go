package auth

import (
	"net/http"
	"strings"
)

// Role is what a console operator may do.
type Role string

// Console roles, from most to least powerful.
const (
	RoleAdmin    Role = "admin"    // everything
	RoleOperator Role = "operator" // rooms, sessions, webhooks; no API keys, no audit log
	RoleViewer   Role = "viewer"   // read only
)

// ParseRole accepts the three role names.
func ParseRole(s string) (Role, bool) {
	switch r := Role(s); r {
	case RoleAdmin, RoleOperator, RoleViewer:
		return r, true
	}
	return "", false
}

// rank orders roles so the strongest of several wins.
func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Stronger reports whether r grants more than o.
func (r Role) Stronger(o Role) bool { return r.rank() > o.rank() }

// Operator is a person signed in to the console (through the identity
// provider or as the local bootstrap admin).
type Operator struct {
	SessionID string // hash of the session cookie
	Issuer    string
	Subject   string
	Email     string
	Name      string
	Role      Role
	Via       string // oidc or local
}

// Actor names the operator in the audit log.
func (o *Operator) Actor() string {
	if o.Email != "" {
		return o.Email
	}
	if o.Via == "local" {
		return "local:" + o.Subject
	}
	return o.Subject
}

// RoutePath is path as the API's router matches it: fiber compares paths
// case-insensitively (CaseSensitive is off) and ignores trailing slashes
// (StrictRouting is off), without decoding escapes or collapsing "//".
// A decision about which route a request reaches must look at this form,
// not at the client's spelling: otherwise /ADMIN/V1/KEYS reaches the keys
// route while a check on "/admin/v1/keys" does not see it.
func RoutePath(path string) string {
	path = strings.ToLower(path)
	if t := strings.TrimRight(path, "/"); t != "" {
		return t
	}
	return "/"
}

// Allow decides whether a console role may send method to path on the
// REST API (/v2, /admin/v1). It is the one place the roles are defined:
// the console's pages call the same routes as API clients and pass here
// first. path is the request's path as the client sent it; Allow judges
// it in the router's form (RoutePath).
func Allow(role Role, method, path string) error {
	path = RoutePath(path)
	read := method == http.MethodGet || method == http.MethodHead
	admin := strings.HasPrefix(path, "/admin/")
	switch role {
	case RoleAdmin:
		return nil
	case RoleOperator:
		switch {
		case strings.HasPrefix(path, "/admin/v1/keys"), strings.HasPrefix(path, "/admin/v1/audit"):
			return forbid("role operator cannot manage API keys or read the audit log (needs role admin)")
		case admin && !read:
			return forbid("role operator cannot change the cluster (needs role admin)")
		}
		return nil
	case RoleViewer:
		switch {
		case !read:
			return forbid("role viewer is read only")
		case strings.HasPrefix(path, "/admin/v1/keys"), strings.HasPrefix(path, "/admin/v1/audit"):
			return forbid("role viewer cannot read API keys or the audit log (needs role admin)")
		case path == "/v2/webhooks/signing-secret":
			return forbid("role viewer cannot read the webhook signing secret (needs role operator)")
		}
		return nil
	}
	return forbid("unknown console role %q", role)
}
