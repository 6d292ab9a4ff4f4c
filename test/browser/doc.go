// Package browser holds end-to-end tests that drive real headless Chromium
// (via chromedp) against a `meridian dev` child process: two browsers join a
// room through the meeting page (/meet/{roomId}) and the JS SDK, and the
// tests check that video really flows, that the REST API sees the session,
// and that server errors reach the user. The cascade tests run a real
// multi-edge deployment instead (`meridian control` plus three `meridian
// edge` processes in two regions): browsers in different regions see each
// other through the cascade, and a page follows its room when its edge is
// killed (kill -9) or drains.
//
// Run:   go test ./test/browser/ -v
// Needs: /usr/bin/chromium (apt-get install -y chromium), or MERIDIAN_CHROMIUM=path.
// Env:   MERIDIAN_REQUIRE_BROWSER=1   fail instead of skipping without Chromium
//
//	MERIDIAN_BROWSER_ARTIFACTS=dir  keep failure screenshots there (default: t.TempDir())
//	MERIDIAN_BROWSER_LOG_LEVEL=debug  server log level (default info)
//	MERIDIAN_BROWSER_SHOW_LOGS=1  print the cascade tests' process logs even when they pass
//	  (with MERIDIAN_BROWSER_ARTIFACTS, a failed cascade test also keeps each process's full log)
package browser
