// Package browser holds end-to-end tests that drive real headless Chromium
// (via chromedp) against a `meridian dev` child process: two browsers join a
// room through the meeting page (/meet/{roomId}) and the JS SDK, and the
// tests check that video really flows, that the REST API sees the session,
// and that server errors reach the user.
//
// Run:   go test ./test/browser/ -v
// Needs: /usr/bin/chromium (apt-get install -y chromium), or MERIDIAN_CHROMIUM=path.
// Env:   MERIDIAN_REQUIRE_BROWSER=1   fail instead of skipping without Chromium
//
//	MERIDIAN_BROWSER_ARTIFACTS=dir  keep failure screenshots there (default: t.TempDir())
//	MERIDIAN_BROWSER_LOG_LEVEL=debug  server log level (default info)
package browser
