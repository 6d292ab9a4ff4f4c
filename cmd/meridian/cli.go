package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

func errNotYet(what string) error { return fmt.Errorf("%s: not available in this build yet", what) }

func runToken(args []string) error {
	fs := newFlagSet("token", "Print a VideoSDK-compatible HS256 JWT signed with an API secret.")
	key := fs.String("api-key", "", "API key (required)")
	secret := fs.String("api-secret", "", "API secret (required)")
	var perms, roles listFlag
	fs.Var(&perms, "permissions", "allow_join, ask_join, allow_mod (default allow_join,allow_mod)")
	fs.Var(&roles, "roles", "crawler (server API), rtc (meetings) (default crawler)")
	room := fs.String("room-id", "", "scope the token to one room")
	participant := fs.String("participant-id", "", "scope the token to one participant")
	ttl := fs.Duration("ttl", 2*time.Hour, "lifetime (0 = no expiry)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *key == "" || *secret == "" {
		return errors.New("token: --api-key and --api-secret are required")
	}
	if len(perms) == 0 {
		perms = listFlag{auth.PermAllowJoin, auth.PermAllowMod}
	}
	if len(roles) == 0 {
		roles = listFlag{auth.RoleCrawler}
	}
	tok, err := auth.Mint(auth.MintOptions{APIKey: *key, Secret: []byte(*secret), Permissions: perms, Roles: roles, RoomID: *room, ParticipantID: *participant, TTL: *ttl})
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

// client is a tiny HTTP helper for the CLI commands.
type client struct {
	base, auth string
	http       *http.Client
}

const caFlagUsage = "PEM file of the CA to trust for an https --server (e.g. the cluster CA's ca.crt; default: the system's)"

// newClient calls base with the Authorization header auth. caFile, when
// given, holds the CA certificates to trust for https (instead of the
// system's): a control node with cluster TLS serves its node certificate,
// signed by the cluster CA, to clients that dial it by IP or by a name the
// certificate holds.
func newClient(base, auth, caFile string) (client, error) {
	c := client{base: base, auth: auth, http: &http.Client{Timeout: time.Minute}}
	if caFile == "" {
		return c, nil
	}
	roots, err := tlsutil.LoadRoots(caFile)
	if err != nil {
		return client{}, fmt.Errorf("--ca: %w", err)
	}
	c.http.Transport = tlsutil.NodeTransport(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	return c, nil
}

func (c client) do(method, path string, body any) (json.RawMessage, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimRight(c.base, "/")+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

func printJSON(raw json.RawMessage) {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		os.Stdout.Write(raw)
		return
	}
	buf.WriteByte('\n')
	os.Stdout.Write(buf.Bytes())
}

func runKeys(args []string) error {
	sub, args, err := subcommand("keys", args, "create", "list", "revoke")
	if err != nil {
		return err
	}
	fs := newFlagSet("keys "+sub, "Manage API keys through the admin API.")
	server := fs.String("server", "http://127.0.0.1:8080", "control API URL")
	token := fs.String("admin-token", "", "admin token (default: read <data>/admin.token)")
	data := fs.String("data", "./meridian-data", "data directory to read the admin token from")
	ca := fs.String("ca", "", caFlagUsage)
	name := fs.String("name", "", "create: a label for the key")
	keyID := fs.String("api-key", "", "create: the key id (default generated)")
	secret := fs.String("api-secret", "", "create: the secret (default generated)")
	userID := fs.String("user-id", "", "create: project id to share rooms with another key (default: new project)")
	var regions listFlag
	fs.Var(&regions, "pin-regions", "create: regions this key's rooms are pinned to")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *token == "" {
		b, err := os.ReadFile(filepath.Join(*data, "admin.token"))
		if err != nil {
			return fmt.Errorf("keys: --admin-token not given and %w", err)
		}
		*token = strings.TrimSpace(string(b))
	}
	c, err := newClient(*server, "Bearer "+*token, *ca)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		body := map[string]any{"name": *name, "apiKey": *keyID, "secret": *secret, "userId": *userID}
		if len(regions) > 0 {
			body["pin"] = map[string]any{"regions": regions}
		}
		out, err := c.do("POST", "/admin/v1/keys", body)
		if err != nil {
			return err
		}
		printJSON(out)
	case "list":
		out, err := c.do("GET", "/admin/v1/keys", nil)
		if err != nil {
			return err
		}
		printJSON(out)
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("keys revoke: give the API key to revoke")
		}
		out, err := c.do("DELETE", "/admin/v1/keys/"+fs.Arg(0), nil)
		if err != nil {
			return err
		}
		printJSON(out)
	}
	return nil
}

func runRooms(args []string) error {
	sub, args, err := subcommand("rooms", args, "create", "list", "get")
	if err != nil {
		return err
	}
	fs := newFlagSet("rooms "+sub, "Call the rooms API with a freshly minted crawler token.")
	server := fs.String("server", "http://127.0.0.1:8080", "control API URL")
	key := fs.String("api-key", "", "API key")
	secret := fs.String("api-secret", "", "API secret")
	custom := fs.String("custom-room-id", "", "create: customRoomId")
	ca := fs.String("ca", "", caFlagUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *key == "" || *secret == "" {
		return errors.New("rooms: --api-key and --api-secret are required")
	}
	tok, err := auth.Mint(auth.MintOptions{APIKey: *key, Secret: []byte(*secret), Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod}, Roles: []string{auth.RoleCrawler}, TTL: 10 * time.Minute})
	if err != nil {
		return err
	}
	c, err := newClient(*server, tok, *ca)
	if err != nil {
		return err
	}
	var out json.RawMessage
	switch sub {
	case "create":
		body := map[string]any{}
		if *custom != "" {
			body["customRoomId"] = *custom
		}
		out, err = c.do("POST", "/v2/rooms", body)
	case "list":
		out, err = c.do("GET", "/v2/rooms", nil)
	case "get":
		if fs.NArg() != 1 {
			return errors.New("rooms get: give the room id")
		}
		out, err = c.do("GET", "/v2/rooms/"+fs.Arg(0), nil)
	}
	if err != nil {
		return err
	}
	printJSON(out)
	return nil
}
