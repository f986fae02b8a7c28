// Package chrometest starts headless Chromium for the browser tests through
// chromedp, with the options they share. It is apart from testlib so that
// the packages that use testlib outside `go test` (test/mail, for
// bench/mail) do not link chromedp.
package chrometest

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// AllocatorOptions are the chromedp options of a headless Chromium at path
// chromium with its profile in the folder profile: no sandbox (the tests
// may run as root), no GPU, no first-run page, and no background traffic
// (networking, component updates, sync) to slow it or make it flaky.
func AllocatorOptions(chromium, profile string) []chromedp.ExecAllocatorOption {
	return append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
	)
}

// Start starts headless Chromium (AllocatorOptions) and returns the context
// of its first tab; the browser stops when the test ends. The profile
// folder must outlive it: make it before calling Start, so that its
// cleanup runs after the browser's.
func Start(t testing.TB, chromium, profile string) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), AllocatorOptions(chromium, profile)...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first Run starts the browser; it lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}
