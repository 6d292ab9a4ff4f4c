package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/console"
	"github.com/meridian-video/meridian/control/console/consoletest"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

// hookReceiver is a real HTTP webhook receiver counting requests per
// delivery id.
type hookReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]int // delivery id -> requests received
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		// Standard Webhooks: webhook-id is the delivery's id, the same on
		// every attempt.
		id := req.Header.Get("webhook-id")
		r.mu.Lock()
		r.got[id]++
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

// TestConsoleEndToEnd: an operator signs in to the console of `meridian
// dev` through a real OpenID provider in the test process, watches a live
// session of two pion participants with per-participant graphs that
// update, redelivers a webhook with one click, and creates and revokes an
// API key — everything through the pages, checked against the API and a
// real webhook receiver.
func TestConsoleEndToEnd(t *testing.T) {
	chromiumPath(t)
	idp := consoletest.Start(t, consoletest.Client{ID: "meridian-console", Secret: "console-secret-for-browser-test"},
		consoletest.User{ID: "u-ana", Username: "ana", Password: "ana-password-123", Email: "ana@example.com", First: "Ana", Last: "Admin",
			Groups: []string{"meridian-admins"}})
	// `meridian dev` reads its flags from the environment too.
	for k, v := range map[string]string{
		"MERIDIAN_CONSOLE_OIDC_ISSUER": idp.URL, "MERIDIAN_CONSOLE_OIDC_CLIENT_ID": "meridian-console",
		"MERIDIAN_CONSOLE_OIDC_CLIENT_SECRET": "console-secret-for-browser-test", "MERIDIAN_CONSOLE_OIDC_SCOPES": "profile,email,groups",
		"MERIDIAN_CONSOLE_OIDC_ADMIN": "meridian-admins",
	} {
		t.Setenv(k, v)
	}
	dev := startDev(t)
	idp.Register(dev.URL + console.CallbackPath)
	hooks := newHookReceiver(t)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel) // after the failure screenshot (cleanups run last-in first-out)
	p := newPage(t, ctx, "console")

	// Sign in: the console offers single sign-on, the provider's form
	// takes the password, the callback lands back in the console.
	p.navigate(dev.URL + "/console/")
	p.waitFor("the sign-in button", 10*time.Second, `({ok: !document.getElementById('sso-box').hidden})`)
	if err := p.click("#sso"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the provider's login form", 10*time.Second, `({ok: !!document.getElementById('password'), url: location.href})`)
	if err := p.run(chromedp.SendKeys("#username", "ana"), chromedp.SendKeys("#password", "ana-password-123"), chromedp.Submit("#password")); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the console signed in as ana", 15*time.Second, fmt.Sprintf(`({ok: location.origin === %q && document.getElementById('who').textContent.includes('ana@example.com · admin'),
  url: location.href, who: document.getElementById('who').textContent, err: document.getElementById('global-error').textContent})`, dev.URL))

	// A room with a webhook, and two pion participants in it.
	var room struct {
		RoomID string `json:"roomId"`
	}
	if st, b := dev.call("POST", "/v2/rooms", dev.crawler(), map[string]any{"webhook": map[string]any{"endPoint": hooks.srv.URL + "/hook",
		"events": []string{"participant-joined"}}}, &room); st != 200 {
		t.Fatalf("create room: %d %s", st, b)
	}
	for _, pid := range []string{"pion-a", "pion-b"} {
		jctx, jcancel := context.WithTimeout(ctx, 20*time.Second)
		s, err := signaltest.StartSession(jctx, signaltest.SessionConfig{APIBase: dev.URL, Token: dev.rtcToken(room.RoomID, pid, false),
			RoomID: room.RoomID, ParticipantID: pid, Name: "Pion " + pid,
			Client:  signaltest.Config{PingInterval: time.Second},
			Publish: &signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}})
		jcancel()
		if err != nil {
			t.Fatalf("participant %s: %v", pid, err)
		}
		t.Cleanup(s.Close)
	}

	// Live sessions -> the session's graphs.
	p.navigate(dev.URL + "/console/sessions")
	p.waitFor("the live session in the list", 15*time.Second, fmt.Sprintf(`(() => {
  const row = [...document.querySelectorAll('tr[data-session]')].find(r => r.textContent.includes(%q));
  return {ok: !!row && row.textContent.includes('2 live'), rows: document.getElementById('app').innerText.slice(0, 400)};
})()`, room.RoomID))
	if err := p.click("tr[data-session] a.open-session"); err != nil {
		t.Fatal(err)
	}
	// Each participant gets four uPlot charts; the first stats sample
	// reaches the control plane within the edge's 10 s interval.
	first := p.waitFor("graphs with a stats sample for both participants", 40*time.Second, `(() => {
  const cards = [...document.querySelectorAll('.participant')];
  const out = {cards: cards.map(c => ({id: c.dataset.participant, points: +(c.dataset.points || 0), plots: c.querySelectorAll('.uplot canvas').length}))};
  out.ok = cards.length === 2 && out.cards.every(c => c.points >= 1 && c.plots === 4);
  // The cards are paged like every other list.
  out.pager = document.getElementById('participants')?.closest('.paged')?.querySelector(':scope > .pager span')?.textContent;
  out.ok = out.ok && out.pager === 'page 1 of 1 · 2 total';
  // The chart library drew what the API measured: video sent by pion-a.
  const bitrate = state.charts.filter(u => u.root.closest('.participant')?.dataset.participant === 'pion-a' && u.root.closest('[data-graph=bitrate]'));
  out.maxVideoKbps = bitrate.length ? Math.max(0, ...bitrate[0].data[1]) : -1;
  out.ok = out.ok && out.maxVideoKbps > 0;
  return out;
})()`)
	t.Logf("graphs: %v", first)
	// The graph updates by itself: more points on the same chart objects.
	p.waitFor("a graph that updates", 40*time.Second, `(() => {
  const card = document.querySelector('.participant[data-participant="pion-a"]');
  const u = state.charts.find(u => u.root.closest('.participant') === card && u.root.closest('[data-graph=rtt]'));
  window.__firstChart = window.__firstChart || u;
  const n = u ? u.data[0].length : 0;
  window.__firstPoints = window.__firstPoints || n;
  return {ok: !!u && u === window.__firstChart && n > window.__firstPoints, points: n, before: window.__firstPoints};
})()`)

	// The operator ends the meeting; past sessions show it with its
	// duration and quality.
	sessionID, err := evalJS[string](p, `location.pathname.split('/').pop()`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evalJS[bool](p, `(window.confirm = () => true, true)`); err != nil {
		t.Fatal(err)
	}
	if err := p.click("button.end-session"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the session shown ended", 10*time.Second, `({ok: document.getElementById('app').innerText.includes(' · ended · ')})`)
	p.navigate(dev.URL + "/console/history")
	p.waitFor("the ended session with its quality", 15*time.Second, fmt.Sprintf(`(() => {
  const row = document.querySelector('tr[data-session=%q]');
  const q = row?.querySelector('.quality')?.textContent || '';
  return {ok: /audio [1-5]\.\d · video [1-5]\.\d/.test(q) && / s$/.test(row.children[3].textContent), quality: q, duration: row?.children[3].textContent};
})()`, sessionID))

	// Webhooks: the participant-joined deliveries, one click redelivers.
	var deliveries struct {
		Data []struct {
			ID, EventID, EventType, Status string
		} `json:"data"`
	}
	poll(t, "a delivered webhook", 20*time.Second, func() string {
		dev.call("GET", "/v2/webhooks/deliveries?roomId="+room.RoomID, dev.crawler(), nil, &deliveries)
		for _, d := range deliveries.Data {
			if d.Status == "delivered" && hooks.count(d.ID) == 1 {
				return ""
			}
		}
		return fmt.Sprintf("deliveries %+v", deliveries.Data)
	})
	var target struct{ ID, EventID string }
	for _, d := range deliveries.Data {
		if d.Status == "delivered" && hooks.count(d.ID) == 1 {
			target.ID, target.EventID = d.ID, d.EventID
			break
		}
	}
	// From the room's row to its endpoint's delivery log.
	p.navigate(dev.URL + "/console/rooms")
	p.waitFor("the room's webhook endpoint", 10*time.Second, fmt.Sprintf(`({ok: document.querySelector('tr[data-room=%q] a.endpoint')?.textContent === %q})`,
		room.RoomID, hooks.srv.URL+"/hook"))
	if err := p.click(fmt.Sprintf("tr[data-room=%q] a.endpoint", room.RoomID)); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the delivery in the endpoint's log", 10*time.Second, fmt.Sprintf(`({ok: !!document.querySelector('tr[data-delivery=%[1]q] button.redeliver') &&
  document.querySelector('#endpoints h2')?.textContent === 'Endpoints in this page of the delivery log' &&
  document.querySelector('#delivery-filter input[name=url]').value === %[2]q && location.pathname === '/console/webhooks' &&
  performance.getEntriesByType('resource').some(e => e.name.includes('/v2/webhooks/deliveries?') && e.name.endsWith('&url=' + encodeURIComponent(%[2]q)))})`,
		target.ID, hooks.srv.URL+"/hook"))
	if err := p.click(fmt.Sprintf("tr[data-delivery=%q] button.redeliver", target.ID)); err != nil {
		t.Fatal(err)
	}
	poll(t, "the receiver gets the event again", 20*time.Second, func() string {
		if n := hooks.count(target.ID); n < 2 {
			return fmt.Sprintf("delivery %s received %d times", target.ID, n)
		}
		return ""
	})
	p.waitFor("the log shows the second attempt", 15*time.Second, fmt.Sprintf(`(() => {
  const row = document.querySelector('tr[data-delivery=%q]');
  const err = [...document.querySelectorAll('#app .error')].filter(e => !e.hidden).map(e => e.textContent).join(' ');
  return {ok: !!row && +row.querySelector('.attempts').textContent >= 2 && !err, attempts: row?.querySelector('.attempts').textContent, err};
})()`, target.ID))

	// API keys: create one, its secret is shown once and works; revoke it.
	p.navigate(dev.URL + "/console/keys")
	if err := p.run(chromedp.WaitVisible(`#create-key input[name=name]`), chromedp.SendKeys(`#create-key input[name=name]`, "from-the-browser"),
		chromedp.Click(`#create-key button[type=submit]`)); err != nil {
		t.Fatal(err)
	}
	fresh := p.waitFor("the new key's secret", 10*time.Second, `({ok: !document.getElementById('new-secret').hidden,
  key: document.querySelector('#new-secret .new-key')?.textContent, secret: document.querySelector('#new-secret .secret')?.textContent})`)
	key, _ := fresh["key"].(string)
	secret, _ := fresh["secret"].(string)
	newKeyToken := func() string {
		return mint(t, tokenOpts{roles: []string{auth.RoleCrawler}, perms: []string{auth.PermAllowJoin}, key: key, secret: secret})
	}
	if st, b := dev.call("GET", "/v2/rooms", newKeyToken(), nil, nil); st != 200 {
		t.Fatalf("the key made in the console: %d %s", st, b)
	}
	if _, err := evalJS[bool](p, `(window.confirm = () => true, true)`); err != nil {
		t.Fatal(err)
	}
	if err := p.click(fmt.Sprintf("tr[data-key=%q] button.revoke", key)); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the key shown revoked", 10*time.Second, fmt.Sprintf(`({ok: (document.querySelector('tr[data-key=%q] .status')?.textContent || '').startsWith('revoked')})`, key))
	if st, b := dev.call("GET", "/v2/rooms", newKeyToken(), nil, nil); st != 401 {
		t.Fatalf("the revoked key still works: %d %s", st, b)
	}

	// Cluster: the member is ready, the in-process edge is up in region
	// "local" with the participants it carried (none after the session).
	p.navigate(dev.URL + "/console/cluster")
	p.waitFor("the cluster and its edge", 10*time.Second, `(() => {
  const member = document.querySelector('tr[data-node="dev"] .health')?.textContent || '';
  const edge = document.querySelector('[data-region="local"] tr[data-edge="dev-edge"]');
  // The members table is paged like every other list.
  const pager = document.getElementById('members')?.closest('.paged')?.querySelector(':scope > .pager span')?.textContent;
  // Its clock, measured from heartbeat replies, is the control plane's (one process).
  const clock = edge?.querySelector('.clock')?.textContent || '';
  return {ok: member.startsWith('ready') && document.getElementById('health').textContent === '1 of 1 members ready' &&
    edge?.querySelector('.up')?.textContent === 'up' && pager === 'page 1 of 1 · 1 total' && /^[+-]0\.\d s$/.test(clock), member, edge: edge?.textContent, pager, clock};
})()`)

	// Sign out: the session ends on the server, the page asks to sign in.
	if err := p.click("#logout"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the sign-in page after signing out", 10*time.Second, `(async () => {
  const me = await fetch('/console/api/me');
  return {ok: !document.getElementById('login').hidden && document.getElementById('app').hidden && me.status === 401, me: me.status};
})()`)

	// Every action above is in the audit log, by ana, through the console.
	var audit struct {
		Data []struct{ Actor, Action, Via string } `json:"data"`
	}
	adminToken := devAdminToken(t, dev)
	dev.call("GET", "/admin/v1/audit?perPage=100&actor=ana@example.com", "Bearer "+adminToken, nil, &audit)
	have := map[string]bool{}
	for _, a := range audit.Data {
		have[a.Action] = true
	}
	for _, want := range []string{"login", "POST /v2/sessions/end", "POST /v2/webhooks/deliveries/:id/redeliver", "POST /admin/v1/keys", "DELETE /admin/v1/keys/:key", "logout"} {
		if !have[want] {
			t.Errorf("audit log lacks %q: %+v", want, audit.Data)
		}
	}
}

// devAdminToken reads the admin token `meridian dev` printed.
func devAdminToken(t *testing.T, dev *devServer) string {
	t.Helper()
	for _, line := range strings.Split(dev.out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "Admin" && f[1] == "token" {
			return f[2]
		}
	}
	t.Fatalf("no admin token in the dev output:\n%s", tail(dev.out.String(), 30))
	return ""
}

// devConsoleLogin reads the local bootstrap admin that `meridian dev`
// printed ("Console  <url>/console/   (user admin, password …)").
func devConsoleLogin(t *testing.T, dev *devServer) (user, password string) {
	t.Helper()
	m := regexp.MustCompile(`Console\s+\S+/console/\s+\(user (\S+), password (\S+)\)`).FindStringSubmatch(dev.out.String())
	if m == nil {
		t.Fatalf("no console sign-in in the dev output:\n%s", tail(dev.out.String(), 30))
	}
	return m[1], m[2]
}

// TestConsolePagesAndRoles: the bootstrap admin `meridian dev` printed
// signs in with its password; the rooms page creates a room, copies its
// meeting link to the clipboard and deactivates it; lists page with
// Previous/Next; the audit log page shows what happened; a refused
// sign-out says so. A viewer signed in through the identity provider sees
// the admin actions disabled or hidden, and the server's 403 on screen
// when it forces one.
func TestConsolePagesAndRoles(t *testing.T) {
	chromiumPath(t)
	idp := consoletest.Start(t, consoletest.Client{ID: "meridian-console", Secret: "console-secret-for-browser-test"},
		consoletest.User{ID: "u-vic", Username: "vic", Password: "vic-password-123", Email: "vic@example.com", First: "Vic", Last: "Viewer",
			Groups: []string{"meridian-viewers"}})
	for k, v := range map[string]string{
		"MERIDIAN_CONSOLE_OIDC_ISSUER": idp.URL, "MERIDIAN_CONSOLE_OIDC_CLIENT_ID": "meridian-console",
		"MERIDIAN_CONSOLE_OIDC_CLIENT_SECRET": "console-secret-for-browser-test", "MERIDIAN_CONSOLE_OIDC_SCOPES": "profile,email,groups",
		"MERIDIAN_CONSOLE_OIDC_ADMIN": "meridian-admins", "MERIDIAN_CONSOLE_OIDC_VIEWER": "meridian-viewers",
	} {
		t.Setenv(k, v)
	}
	dev := startDev(t)
	idp.Register(dev.URL + console.CallbackPath)
	user, password := devConsoleLogin(t, dev)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	p := newPage(t, ctx, "console-admin")
	// The page may write to and read the clipboard like a focused tab.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(p.ctx, browser.SetPermission, browser.SetPermissionParams{Permission: &browser.PermissionDescriptor{Name: perm},
			Setting: browser.PermissionSettingGranted, Origin: dev.URL}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}
	if _, err := chromedp.Call(p.ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatal(err)
	}

	// More rooms than one page holds (20 per page).
	for i := range 21 {
		if st, b := dev.call("POST", "/v2/rooms", dev.crawler(), map[string]any{"customRoomId": fmt.Sprintf("paged-%02d", i)}, nil); st != 200 {
			t.Fatalf("create room %d: %d %s", i, st, b)
		}
	}

	// Sign in with the printed password.
	p.navigate(dev.URL + "/console/")
	p.waitFor("the local sign-in form", 10*time.Second, `({ok: !document.getElementById('local-form').hidden})`)
	if err := p.run(chromedp.SendKeys(`#local-form input[name=username]`, user), chromedp.SendKeys(`#local-form input[name=password]`, password),
		chromedp.Click(`#local-form button[type=submit]`)); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the console signed in as the bootstrap admin", 10*time.Second, fmt.Sprintf(`({ok: document.getElementById('who').textContent.endsWith(%q) &&
  location.pathname.startsWith('/console'), who: document.getElementById('who').textContent, err: document.querySelector('#local-form .error')?.textContent})`, " · admin"))

	// The pager: page 1 of 2, Next, Previous.
	p.navigate(dev.URL + "/console/rooms")
	pageOf := func(want string) []any {
		got := p.waitFor("rooms "+want, 10*time.Second, fmt.Sprintf(`(() => {
  const pager = document.querySelector('#app .pager span')?.textContent || '';
  const rows = [...document.querySelectorAll('tr[data-room]')].map(r => r.dataset.room);
  const [prev, next] = [...document.querySelectorAll('#app .pager button')];
  return {ok: pager.startsWith(%q), pager, rows, prevDisabled: prev?.disabled, nextDisabled: next?.disabled};
})()`, want))
		rows, _ := got["rows"].([]any)
		return append(rows, got["prevDisabled"], got["nextDisabled"])
	}
	first := pageOf("page 1 of 2 · 21 total")
	if len(first) != 22 || first[20] != true || first[21] != false {
		t.Fatalf("page 1: %v (20 rooms, Previous disabled, Next enabled)", first)
	}
	if err := p.click(`#app .pager button:last-child`); err != nil {
		t.Fatal(err)
	}
	second := pageOf("page 2 of 2 · 21 total")
	if len(second) != 3 || second[1] != false || second[2] != true || slices.Contains(first[:20], second[0]) {
		t.Fatalf("page 2: %v (one room not on page 1, Previous enabled, Next disabled)", second)
	}
	if err := p.click(`#app .pager button:first-child`); err != nil {
		t.Fatal(err)
	}
	if again := pageOf("page 1 of 2 · 21 total"); !slices.Equal(again[:20], first[:20]) {
		t.Fatalf("back on page 1: %v, first time %v", again, first)
	}

	// Create a room with the form.
	if err := p.run(chromedp.SendKeys(`#create-room input[name=customRoomId]`, "made-in-the-browser"), chromedp.Click(`#create-room button[type=submit]`)); err != nil {
		t.Fatal(err)
	}
	created := p.waitFor("the created room", 10*time.Second, `(() => {
  const n = document.getElementById('meeting-link');
  const id = n.textContent.startsWith('Created room') ? n.querySelector('code')?.textContent : '';
  return {ok: !!id && !!document.querySelector('tr[data-room="' + id + '"]') && document.querySelector('#app .pager span').textContent.includes('22 total'), id, notice: n.textContent};
})()`)
	roomID, _ := created["id"].(string)
	var room struct {
		CustomRoomID string `json:"customRoomId"`
		Disabled     bool   `json:"disabled"`
	}
	if st, b := dev.call("GET", "/v2/rooms/"+roomID, dev.crawler(), nil, &room); st != 200 || room.CustomRoomID != "made-in-the-browser" || room.Disabled {
		t.Fatalf("the room created in the console: %d %s", st, b)
	}

	// Copy its meeting link: it is on the clipboard and joins that room.
	if err := p.click(fmt.Sprintf(`tr[data-room=%q] button.copy-link`, roomID)); err != nil {
		t.Fatal(err)
	}
	copied := p.waitFor("the meeting link on the clipboard", 10*time.Second, `(async () => {
  const n = document.getElementById('meeting-link');
  const shown = n.querySelector('input.link')?.value || '';
  let clip = '';
  try { clip = await navigator.clipboard.readText(); } catch (e) { clip = 'error: ' + e.message; }
  return {ok: n.textContent.includes('(copied)') && shown !== '' && clip === shown, shown, clip, notice: n.textContent};
})()`)
	link, err := url.Parse(copied["clip"].(string))
	if err != nil || link.Path != "/meet/"+roomID || !strings.HasPrefix(copied["clip"].(string), dev.URL+"/meet/") {
		t.Fatalf("meeting link %v: %v", copied["clip"], err)
	}
	if claims := jwtClaims(t, link.Query().Get("token")); claims["roomId"] != roomID {
		t.Fatalf("the link's token is for room %v, want %s", claims["roomId"], roomID)
	}
	if resp, err := http.Get(link.String()); err != nil || resp.StatusCode != 200 {
		t.Fatalf("open the meeting link: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Deactivate it.
	if _, err := evalJS[bool](p, `(window.confirm = () => true, true)`); err != nil {
		t.Fatal(err)
	}
	if err := p.click(fmt.Sprintf(`tr[data-room=%q] button.deactivate`, roomID)); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the room shown deactivated", 10*time.Second, fmt.Sprintf(`(() => {
  const row = document.querySelector('tr[data-room=%q]');
  return {ok: !!row && row.children[3].textContent.startsWith('deactivated') && row.querySelector('button.deactivate').disabled, row: row?.textContent};
})()`, roomID))
	if st, b := dev.call("GET", "/v2/rooms/"+roomID, dev.crawler(), nil, &room); st != 200 || !room.Disabled {
		t.Fatalf("the room deactivated in the console: %d %s", st, b)
	}

	// A viewer, signed in through the identity provider in another browser.
	v := newPage(t, ctx, "console-viewer")
	v.navigate(dev.URL + "/console/")
	v.waitFor("the sign-in button", 10*time.Second, `({ok: !document.getElementById('sso-box').hidden})`)
	if err := v.click("#sso"); err != nil {
		t.Fatal(err)
	}
	v.waitFor("the provider's login form", 10*time.Second, `({ok: !!document.getElementById('password')})`)
	if err := v.run(chromedp.SendKeys("#username", "vic"), chromedp.SendKeys("#password", "vic-password-123"), chromedp.Submit("#password")); err != nil {
		t.Fatal(err)
	}
	v.waitFor("the viewer's rooms page, admin actions disabled or hidden", 15*time.Second, fmt.Sprintf(`(() => {
  const who = document.getElementById('who').textContent;
  const hidden = ['keys', 'audit'].every(s => document.querySelector('#nav a[data-section=' + s + ']').hidden);
  const create = document.querySelector('#create-room button[type=submit]');
  const deact = [...document.querySelectorAll('tr[data-room] button.deactivate')];
  return {ok: who === 'vic@example.com · viewer' && hidden && !!create && create.disabled && deact.length === 20 && deact.every(b => b.disabled) &&
    !!document.querySelector('tr[data-room=%q]'), who, hidden, create: create?.disabled, deact: deact.length};
})()`, roomID))
	// Forced: the disabled button enabled by hand; the server refuses and
	// the page shows why; nothing is created.
	before := roomTotal(t, dev)
	if _, err := evalJS[bool](v, `(document.querySelector('#create-room button[type=submit]').disabled = false, true)`); err != nil {
		t.Fatal(err)
	}
	if err := v.click(`#create-room button[type=submit]`); err != nil {
		t.Fatal(err)
	}
	v.waitFor("the refusal on screen", 10*time.Second, `(() => {
  const errs = [...document.querySelectorAll('#app .error')].filter(e => !e.hidden).map(e => e.textContent);
  return {ok: errs.some(e => e.startsWith('403: role viewer is read only')), errs};
})()`)
	if n := roomTotal(t, dev); n != before {
		t.Fatalf("a viewer's forced create made a room: %d rooms, want %d", n, before)
	}
	// Forced admin pages: the API's 403 shown, no data.
	for _, page := range []string{"keys", "audit"} {
		v.navigate(dev.URL + "/console/" + page)
		v.waitFor("the "+page+" page refused", 10*time.Second, `(() => {
  const errs = [...document.querySelectorAll('#app .error')].filter(e => !e.hidden).map(e => e.textContent);
  return {ok: errs.some(e => e.startsWith('403: role viewer cannot read API keys or the audit log')) && !document.querySelector('#app tbody tr'), errs};
})()`)
	}

	// The audit log page: the admin's changes and the viewer's refusal.
	p.navigate(dev.URL + "/console/audit")
	p.waitFor("the audit log", 10*time.Second, fmt.Sprintf(`(() => {
  const rows = [...document.querySelectorAll('tr[data-seq]')].map(r => ({actor: r.querySelector('.actor').textContent,
    action: r.querySelector('.action').textContent, result: r.querySelector('.result').textContent, from: r.querySelector('.from').textContent}));
  const has = (actor, action, status) => rows.some(r => r.actor === actor && r.action === action && r.result.startsWith(status) && r.from === '127.0.0.1');
  return {ok: has(%[1]q, 'login', '200') && has(%[1]q, 'POST /v2/rooms', '200') && has(%[1]q, 'POST /v2/rooms/:roomId/meeting-link', '200') &&
    has(%[1]q, 'POST /v2/rooms/deactivate', '200') && has('vic@example.com', 'login', '200') && has('vic@example.com', 'POST /v2/rooms', '403'), rows: rows.slice(0, 12)};
})()`, "local:"+user))

	// A sign-out the server refuses (here: a wrong CSRF token) says so and
	// leaves the operator signed in; the next one signs out.
	if _, err := evalJS[bool](p, `(state.me.csrfToken = 'not-the-token', true)`); err != nil {
		t.Fatal(err)
	}
	if err := p.click("#logout"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the refused sign-out on screen", 10*time.Second, `(async () => {
  const g = document.getElementById('global-error');
  const me = await fetch('/console/api/me');
  return {ok: !g.hidden && g.textContent.startsWith('Sign-out failed, you are still signed in: 403') && g.textContent.includes('CSRF') &&
    document.getElementById('login').hidden && me.status === 200, shown: g.textContent, me: me.status};
})()`)
	p.navigate(dev.URL + "/console/rooms")
	p.waitFor("the console again", 10*time.Second, `({ok: !document.getElementById('logout').hidden})`)
	if err := p.click("#logout"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("signed out", 10*time.Second, `(async () => {
  const me = await fetch('/console/api/me');
  return {ok: !document.getElementById('login').hidden && document.getElementById('global-error').textContent === 'Signed out.' && me.status === 401, me: me.status};
})()`)
}

func roomTotal(t *testing.T, dev *devServer) int {
	t.Helper()
	var out struct {
		PageInfo struct{ Total int } `json:"pageInfo"`
	}
	if st, b := dev.call("GET", "/v2/rooms", dev.crawler(), nil, &out); st != 200 {
		t.Fatalf("rooms: %d %s", st, b)
	}
	return out.PageInfo.Total
}

// jwtClaims decodes a token's payload (its signature is the server's
// business; the test wants to know which room it names).
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	var out map[string]any
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return out
}
