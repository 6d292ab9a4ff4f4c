package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestAdminClusterMembers: the admin API lists the voters and removes one
// (through a follower), refusing the leader and unknown ids.
func TestAdminClusterMembers(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	admin := "Bearer " + c.AdminToken
	var list struct {
		Leader  string
		Members []struct{ ID, HTTPAddr string }
	}
	f := c.Followers()
	c.Do(f[0], "GET", "/admin/v1/cluster", admin, nil).JSON(t, &list)
	if len(list.Members) != 3 || list.Leader == "" {
		t.Fatalf("members: %+v", list)
	}
	if r := c.Do(f[0], "DELETE", "/admin/v1/cluster/nodes/"+list.Leader, admin, nil); r.Status != 409 {
		t.Fatalf("removing the leader: %d %s", r.Status, r.Body)
	}
	if r := c.Do(f[0], "DELETE", "/admin/v1/cluster/nodes/nope", admin, nil); r.Status != 404 {
		t.Fatalf("removing an unknown node: %d %s", r.Status, r.Body)
	}
	victim := fmt.Sprintf("node%d", f[1])
	c.Stop(f[1])
	if r := c.Do(f[0], "DELETE", "/admin/v1/cluster/nodes/"+victim, admin, nil); r.Status != 200 {
		t.Fatalf("removing %s: %d %s", victim, r.Status, r.Body)
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		c.Do(f[0], "GET", "/admin/v1/cluster", admin, nil).JSON(t, &list)
		if len(list.Members) != 2 {
			return fmt.Sprintf("%d members", len(list.Members))
		}
		return ""
	})
	if r := c.Do(f[0], "GET", "/admin/v1/cluster", "Bearer wrong", nil); r.Status != 401 {
		t.Fatalf("wrong admin token: %d", r.Status)
	}
}
