package api_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
)

// tokenApp serves /bearer behind a BearerToken check and /cluster behind
// RequireClusterToken, with the API's error handler (JSON bodies).
func tokenApp(bearer api.BearerToken, clusterToken string) *fiber.App {
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		if e, ok := err.(*api.Error); ok {
			return c.Status(e.Status).JSON(fiber.Map{"message": e.Message})
		}
		return c.Status(500).SendString(err.Error())
	}})
	app.Get("/bearer", func(c *fiber.Ctx) error {
		if err := bearer.Check(c); err != nil {
			return err
		}
		return c.SendString("ok")
	})
	app.Get("/cluster", api.RequireClusterToken(clusterToken), func(c *fiber.Ctx) error { return c.SendString("ok") })
	return app
}

func tokenCall(t *testing.T, app *fiber.App, path, header, value string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Message string }
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: a %d without a JSON message: %s", path, resp.StatusCode, b)
		}
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(b)
}

// A bearer token is accepted with the scheme in any case or without it; a
// missing one (another scheme included) and a wrong one are told apart; a node with no token set
// accepts none.
func TestBearerTokenCheck(t *testing.T) {
	check := api.BearerToken{Want: "s3cret", Missing: "token required", Wrong: "wrong token"}
	app := tokenApp(check, "")
	for _, tc := range []struct {
		header string
		status int
		body   string
	}{
		{"Bearer s3cret", 200, "ok"},
		{"bearer s3cret", 200, "ok"},
		{"BEARER  s3cret ", 200, "ok"},
		{"s3cret", 200, "ok"},
		{"", 401, "token required"},
		{"Bearer ", 401, "token required"},
		{"Bearer s3cre", 401, "wrong token"},
		{"Bearer s3cret2", 401, "wrong token"},
		{"Basic s3cret", 401, "token required"},
	} {
		status, body := tokenCall(t, app, "/bearer", "Authorization", tc.header)
		if status != tc.status || body != tc.body {
			t.Errorf("Authorization %q: %d %q, want %d %q", tc.header, status, body, tc.status, tc.body)
		}
	}
	unset := tokenApp(api.BearerToken{Missing: "token required", Wrong: "wrong token"}, "")
	for _, h := range []string{"Bearer ", "Bearer x", "x"} {
		if status, _ := tokenCall(t, unset, "/bearer", "Authorization", h); status != 401 {
			t.Errorf("no token configured, Authorization %q: %d, want 401", h, status)
		}
	}
}

// Node-to-node routes want the cluster token in its header; a node
// without one (tests, a misconfiguration) lets nothing through, not even a
// request with an empty header.
func TestRequireClusterToken(t *testing.T) {
	app := tokenApp(api.BearerToken{}, "ct")
	for _, tc := range []struct {
		header, value string
		status        int
	}{
		{cluster.TokenHeader, "ct", 200},
		{cluster.TokenHeader, "c", 401},
		{cluster.TokenHeader, "", 401},
		{"", "", 401},
		{"Authorization", "Bearer ct", 401},
	} {
		if status, body := tokenCall(t, app, "/cluster", tc.header, tc.value); status != tc.status {
			t.Errorf("%s: %q: %d %s, want %d", tc.header, tc.value, status, body, tc.status)
		}
	}
	none := tokenApp(api.BearerToken{}, "")
	for _, v := range []string{"", "x"} {
		if status, _ := tokenCall(t, none, "/cluster", cluster.TokenHeader, v); status != 401 {
			t.Errorf("no cluster token configured, header %q: %d, want 401", v, status)
		}
	}
}
