package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsoleFlags: SSO is configured by issuer, client and role values;
// the redirect URL defaults to the public URL's callback; secrets come
// from files; half a configuration is refused before the node starts.
func TestConsoleFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "oidc-secret")
	admin := filepath.Join(dir, "admin-password")
	_ = os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	_ = os.WriteFile(admin, []byte("a-long-password-1\n"), 0o600)
	parse := func(args ...string) *consoleFlags {
		fs := flag.NewFlagSet("control", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f controlFlags
		f.register(fs, false)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return &f.console
	}
	cc, err := parse("--console-oidc-issuer", "https://kc.example.com/realms/acme", "--console-oidc-client-id", "meridian",
		"--console-oidc-client-secret-file", secret, "--console-oidc-role-claim", "realm_access.roles",
		"--console-oidc-admin", "ops-admins,root", "--console-oidc-viewer", "staff",
		"--console-admin-password-file", admin).config("https://meridian.example.com")
	if err != nil {
		t.Fatal(err)
	}
	o := cc.OIDC
	if o == nil || o.ClientSecret != "s3cret" || o.RedirectURL != "https://meridian.example.com/console/auth/callback" || o.RoleClaim != "realm_access.roles" ||
		strings.Join(o.AdminValues, "|") != "ops-admins|root" || strings.Join(o.ViewerValues, "|") != "staff" || len(o.OperatorValues) != 0 ||
		strings.Join(o.Scopes, ",") != "profile,email" || cc.Dev {
		t.Fatalf("OIDC config %+v (dev %v)", o, cc.Dev)
	}
	if len(cc.LocalAdmins) != 1 || cc.LocalAdmins[0].Username != "admin" || cc.LocalAdmins[0].Password != "a-long-password-1" {
		t.Fatalf("local admins %+v", cc.LocalAdmins)
	}
	// Local admin only: no OIDC, and none at all without a password file.
	if cc, err := parse().config("https://meridian.example.com"); err != nil || cc.OIDC != nil || len(cc.LocalAdmins) != 0 {
		t.Fatalf("defaults: %+v %v", cc, err)
	}
	if cc, err := parse("--console-disabled").config("https://meridian.example.com"); err != nil || cc != nil {
		t.Fatalf("disabled: %+v %v", cc, err)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--console-oidc-client-id", "x"}, "without --console-oidc-issuer"},
		{[]string{"--console-oidc-issuer", "https://kc.example.com", "--console-oidc-admin", "a"}, "client id is required"},
		{[]string{"--console-oidc-issuer", "http://kc.example.com", "--console-oidc-client-id", "x", "--console-oidc-admin", "a"}, "must be an https URL"},
		{[]string{"--console-oidc-issuer", "https://kc.example.com", "--console-oidc-client-id", "x"}, "nobody could sign in"},
		{[]string{"--console-oidc-issuer", "https://kc.example.com", "--console-oidc-client-id", "x", "--console-oidc-admin", "a",
			"--console-oidc-redirect-url", "https://meridian.example.com/callback"}, "must be this console's /console/auth/callback"},
		{[]string{"--console-admin-password-file", filepath.Join(dir, "missing")}, "--console-admin-password-file"},
		{[]string{"--console-idle-timeout", "24h", "--console-session-lifetime", "1h"}, "longer than the absolute timeout"},
	} {
		if _, err := parse(c.args...).config("https://meridian.example.com"); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: error %v, want one saying %q", c.args, err, c.err)
		}
	}
}
