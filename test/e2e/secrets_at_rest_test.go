package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestSecretsSealedAtRest: API secrets and webhook signing secrets never
// reach the Raft log or snapshots in clear text: they are sealed with the
// cluster key, which is not replicated (docs/security.md).
func TestSecretsSealedAtRest(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Persist: true})
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	secret := "sealed-test-" + hex.EncodeToString(b)
	var key struct{ APIKey string }
	r := c.Do(0, "POST", "/admin/v1/keys", "Bearer "+c.AdminToken, map[string]any{"name": "at-rest", "secret": secret})
	if r.Status != 201 {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &key)
	tok, err := auth.Mint(auth.MintOptions{APIKey: key.APIKey, Secret: []byte(secret), Permissions: []string{auth.PermAllowJoin}, Roles: []string{auth.RoleCrawler}})
	if err != nil {
		t.Fatal(err)
	}
	var wh struct{ Secret string }
	if r := c.Do(0, "GET", "/v2/webhooks/signing-secret", tok, nil); r.Status != 200 {
		t.Fatalf("signing secret: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &wh)
	}
	if wh.Secret == "" {
		t.Fatal("no webhook signing secret")
	}
	if err := c.Node(0).Node().Snapshot(); err != nil {
		t.Fatal(err)
	}
	dir := c.Node(0).Config().Cluster.DataDir
	files := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for name, s := range map[string]string{"API secret": secret, "bootstrap API secret": c.APISecret, "webhook secret": wh.Secret} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s: the %s is stored in clear text", p, name)
			}
		}
		return nil
	})
	if err != nil || files < 2 {
		t.Fatalf("walked %d files under %s: %v", files, dir, err)
	}
}
