package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/console"
	"github.com/meridian-video/meridian/control/server"
)

// consoleFlags configure the operator console (/console): single sign-on
// with an OpenID Connect provider and the local bootstrap admin.
type consoleFlags struct {
	disabled                         bool
	issuer, clientID, clientSecret   string
	clientSecretFile, redirectURL    string
	roleClaim, defaultRole           string
	scopes                           listFlag
	adminVals, operatorVals, viewers listFlag
	adminUser, adminPasswordFile     string
	adminPassword                    string
	idle, absolute                   time.Duration
	dev                              bool
}

func (f *consoleFlags) register(fs *flag.FlagSet, dev bool) {
	f.dev = dev
	def := console.DefaultConfig()
	fs.BoolVar(&f.disabled, "console-disabled", false, "do not serve the operator console (/console) nor accept its sessions")
	fs.StringVar(&f.issuer, "console-oidc-issuer", "", "OpenID Connect issuer URL for console sign-in (e.g. https://keycloak.example.com/realms/acme); empty: local admin only")
	fs.StringVar(&f.clientID, "console-oidc-client-id", "", "OAuth client id registered at the provider for the console")
	fs.StringVar(&f.clientSecret, "console-oidc-client-secret", "", "the client's secret (prefer --console-oidc-client-secret-file or MERIDIAN_CONSOLE_OIDC_CLIENT_SECRET)")
	fs.StringVar(&f.clientSecretFile, "console-oidc-client-secret-file", "", "file holding the client's secret")
	fs.StringVar(&f.redirectURL, "console-oidc-redirect-url", "", "redirect URL registered at the provider (default <public URL>"+console.CallbackPath+")")
	fs.Var(&f.scopes, "console-oidc-scopes", "scopes to ask for besides openid (default profile,email; add groups or roles if the provider needs a scope for the role claim)")
	fs.StringVar(&f.roleClaim, "console-oidc-role-claim", "groups", "ID-token claim holding the user's groups or roles; dotted for nested claims (realm_access.roles, roles)")
	fs.Var(&f.adminVals, "console-oidc-admin", "role-claim values granting the admin role (comma-separated or repeated)")
	fs.Var(&f.operatorVals, "console-oidc-operator", "role-claim values granting the operator role (rooms, sessions, webhooks)")
	fs.Var(&f.viewers, "console-oidc-viewer", "role-claim values granting the viewer role (read only)")
	fs.StringVar(&f.defaultRole, "console-oidc-default-role", "", "role of users no value matches (empty refuses them)")
	fs.StringVar(&f.adminUser, "console-admin-user", "admin", "name of the local bootstrap admin")
	if dev {
		fs.StringVar(&f.adminPassword, "console-admin-password", "", "password of the local bootstrap admin (default: generated and kept in <data>/credentials.json)")
	} else {
		fs.StringVar(&f.adminPasswordFile, "console-admin-password-file", "", "file holding the local bootstrap admin's password (12-72 characters); unset: no local admin")
	}
	fs.DurationVar(&f.idle, "console-idle-timeout", def.IdleTimeout, "console sessions unused this long end")
	fs.DurationVar(&f.absolute, "console-session-lifetime", def.AbsoluteTimeout, "console sessions end this long after sign-in")
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// config is the console's configuration (nil when disabled).
func (f *consoleFlags) config(publicURL string) (*console.Config, error) {
	if f.disabled {
		return nil, nil
	}
	cfg := console.DefaultConfig()
	cfg.PublicURL, cfg.Dev = publicURL, f.dev
	cfg.IdleTimeout, cfg.AbsoluteTimeout = f.idle, f.absolute
	if f.adminPasswordFile != "" {
		p, err := readSecretFile(f.adminPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--console-admin-password-file: %w", err)
		}
		f.adminPassword = p
	}
	if f.adminPassword != "" {
		cfg.LocalAdmins = []console.LocalAdmin{{Username: f.adminUser, Password: f.adminPassword}}
	}
	if f.issuer != "" {
		secret := f.clientSecret
		if f.clientSecretFile != "" {
			s, err := readSecretFile(f.clientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("--console-oidc-client-secret-file: %w", err)
			}
			secret = s
		}
		scopes := []string(f.scopes)
		if len(scopes) == 0 {
			scopes = []string{"profile", "email"}
		}
		cfg.OIDC = &console.OIDC{Issuer: f.issuer, ClientID: f.clientID, ClientSecret: secret, RedirectURL: f.redirectURL, Scopes: scopes,
			RoleClaim: f.roleClaim, AdminValues: f.adminVals, OperatorValues: f.operatorVals, ViewerValues: f.viewers,
			DefaultRole: auth.Role(f.defaultRole)}
		if cfg.OIDC.RedirectURL == "" && publicURL != "" {
			cfg.OIDC.RedirectURL = strings.TrimRight(publicURL, "/") + console.CallbackPath
		}
	} else if f.clientID != "" || f.clientSecret != "" || f.clientSecretFile != "" || len(f.adminVals)+len(f.operatorVals)+len(f.viewers) > 0 {
		return nil, fmt.Errorf("--console-oidc-* flags given without --console-oidc-issuer")
	}
	if cfg.PublicURL != "" {
		// Checked now so a bad flag stops the node before it starts.
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	return &cfg, nil
}

// addConsole appends the console's plugin to cfg unless it is disabled.
func addConsole(cfg *server.Config, f *consoleFlags) error {
	cc, err := f.config(cfg.PublicURL)
	if err != nil || cc == nil {
		return err
	}
	cfg.Plugins = append(cfg.Plugins, console.Plugin(*cc))
	return nil
}
