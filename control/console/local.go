package console

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
)

// ensureLocalAdmins stores each configured bootstrap admin's bcrypt hash
// unless the stored one already matches its password (leader only).
func (cs *Console) ensureLocalAdmins(ctx context.Context) error {
	for _, a := range cs.cfg.LocalAdmins {
		var cur *state.LocalAdmin
		cs.node.FSM().Read(func(st *state.Store) { cur, _ = st.LocalAdmin(a.Username) })
		if cur != nil && bcrypt.CompareHashAndPassword([]byte(cur.PasswordHash), []byte(a.Password)) == nil {
			continue
		}
		h, err := bcrypt.GenerateFromPassword([]byte(a.Password), bcrypt.DefaultCost)
		if err != nil {
			return err
		}
		if _, _, err := cs.node.Apply(ctx, state.CmdSetLocalAdmin, state.SetLocalAdmin{Admin: state.LocalAdmin{Username: a.Username, PasswordHash: string(h), UpdatedAt: cs.cfg.Now().UTC()}}); err != nil {
			return fmt.Errorf("console: store local admin %q: %w", a.Username, err)
		}
	}
	return nil
}

// localLogin is POST /console/auth/local {"username", "password"}: the
// bootstrap admin's sign-in. Only same-origin JSON requests are accepted
// (no login CSRF), and attempts are limited per user name and address.
func (cs *Console) localLogin(c *fiber.Ctx) error {
	if len(cs.cfg.LocalAdmins) == 0 {
		return &api.Error{Status: fiber.StatusNotFound, Message: "local sign-in is not enabled on this control plane"}
	}
	if o := c.Get(fiber.HeaderOrigin); o != "" && !cs.sameOrigin(c, o) {
		return forbidden("cross-site sign-in refused")
	}
	if !strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		return &api.Error{Status: fiber.StatusUnsupportedMediaType, Message: "send the credentials as application/json"}
	}
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := api.DecodeJSON(c, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return &api.Error{Status: fiber.StatusBadRequest, Message: "username and password are required"}
	}
	if ok, wait := cs.limit.Allow("local:" + truncate(req.Username, 64) + "\x00" + c.IP()); !ok {
		return &api.Error{Status: fiber.StatusTooManyRequests, Message: "too many sign-in attempts; wait a minute", RetryAfter: int(wait/time.Second) + 1}
	}
	var cur *state.LocalAdmin
	cs.node.FSM().Read(func(st *state.Store) { cur, _ = st.LocalAdmin(req.Username) })
	who := identity{Subject: truncate(req.Username, 64)}
	if cur == nil || bcrypt.CompareHashAndPassword([]byte(cur.PasswordHash), []byte(req.Password)) != nil {
		err := unauthorized("wrong user name or password")
		cs.audit(c, state.AuditEntry{Actor: "local:" + who.Subject, Subject: who.Subject, Via: "local", Action: "login"}, err)
		return err
	}
	ss, err := cs.newSession(c, who, auth.RoleAdmin, "local")
	if err != nil {
		return err
	}
	cs.audit(c, state.AuditEntry{Actor: "local:" + who.Subject, Subject: who.Subject, Role: ss.Role, Via: "local", Action: "login"}, nil)
	return c.JSON(fiber.Map{"signedIn": true, "role": ss.Role})
}
