package auth

import (
	"errors"
	"testing"
)

func TestConsoleRoles(t *testing.T) {
	for _, c := range []struct {
		role         Role
		method, path string
		ok           bool
	}{
		{RoleAdmin, "POST", "/admin/v1/keys", true},
		{RoleAdmin, "DELETE", "/admin/v1/keys/k1", true},
		{RoleAdmin, "GET", "/admin/v1/audit", true},
		{RoleAdmin, "DELETE", "/admin/v1/cluster/nodes/b", true},
		{RoleOperator, "POST", "/v2/rooms", true},
		{RoleOperator, "POST", "/v2/rooms/deactivate", true},
		{RoleOperator, "POST", "/v2/webhooks/deliveries/d1/redeliver", true},
		{RoleOperator, "GET", "/v2/webhooks/signing-secret", true},
		{RoleOperator, "GET", "/admin/v1/cluster", true},
		{RoleOperator, "GET", "/admin/v1/edges", true},
		{RoleOperator, "GET", "/admin/v1/keys", false},
		{RoleOperator, "POST", "/admin/v1/keys", false},
		{RoleOperator, "DELETE", "/admin/v1/keys/k1", false},
		{RoleOperator, "GET", "/admin/v1/audit", false},
		{RoleOperator, "DELETE", "/admin/v1/cluster/nodes/b", false},
		{RoleViewer, "GET", "/v2/rooms", true},
		{RoleViewer, "GET", "/v2/sessions/s1/participant/p1/stats", true},
		{RoleViewer, "GET", "/v2/webhooks/deliveries", true},
		{RoleViewer, "GET", "/admin/v1/cluster/", true},
		{RoleViewer, "POST", "/v2/rooms", false},
		{RoleViewer, "POST", "/v2/webhooks/deliveries/d1/redeliver", false},
		{RoleViewer, "GET", "/v2/webhooks/signing-secret", false},
		{RoleViewer, "GET", "/admin/v1/keys", false},
		{RoleViewer, "POST", "/admin/v1/keys", false},
		{RoleViewer, "GET", "/admin/v1/audit", false},
		{Role("root"), "GET", "/v2/rooms", false},
		// The router matches paths case-insensitively and without trailing
		// slashes, so the role check must see them the same way.
		{RoleOperator, "POST", "/ADMIN/V1/KEYS", false},
		{RoleOperator, "POST", "/Admin/v1/Keys/", false},
		{RoleOperator, "POST", "/admin/v1/keys//", false},
		{RoleOperator, "DELETE", "/Admin/v1/cluster/nodes/b", false},
		{RoleOperator, "GET", "/admin/v1/AUDIT", false},
		{RoleViewer, "GET", "/Admin/v1/audit", false},
		{RoleViewer, "GET", "/V2/webhooks/signing-secret", false},
		{RoleViewer, "GET", "/v2/webhooks/Signing-Secret//", false},
		{RoleViewer, "POST", "/V2/Rooms", false},
		{RoleViewer, "DELETE", "/ADMIN/v1/keys/k1", false},
		{RoleViewer, "GET", "/V2/Rooms", true},
	} {
		err := Allow(c.role, c.method, c.path)
		if (err == nil) != c.ok {
			t.Errorf("%s %s %s: err %v, want allowed=%v", c.role, c.method, c.path, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s %s %s: %v is not a 403", c.role, c.method, c.path, err)
		}
	}
}
