// Package chromium holds the headless Chromium settings shared by the
// browser tests (test/browser) and the join benchmark (benchmarks/joinbench):
// what this machine's Chromium needs to run WebRTC over loopback with fake
// devices, in one place so the test and the benchmark cannot drift apart.
package chromium

import "github.com/chromedp/chromedp"

// Options returns the allocator options for a headless Chromium at
// execPath keeping its profile in userDataDir.
func Options(execPath, userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(userDataDir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 800),
		// A camera and microphone without a device or a permission prompt.
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// ICE candidates on 127.0.0.1, not hidden behind mDNS names.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		// Nothing of Chromium's own on the network (there is none here).
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// Several tabs on 2 cores: keep the hidden ones' timers and media running.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
}
