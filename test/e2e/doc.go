// Package e2e holds idbridge's end-to-end tests: they build the real binary
// (go build ./cmd/idbridge, once per test run), start `idbridge serve --dev`
// on free loopback ports and a temporary data folder, and drive it the way a
// member and an operator do: a headless Chromium (chromedp) walks the account
// pages, a plain HTTP client checks cookies, health and metrics, and the
// command line is run as a separate process against the same data folder.
// IDBRIDGE_E2E_BINARY=PATH tests that binary instead of building one.
//
// Everything here uses only the external contract of PRODUCT.md: commands,
// exit statuses, the four lines `serve --dev` prints, HTTP paths, and the
// form field names of the pages. The PostgreSQL variants run when
// IDBRIDGE_TEST_POSTGRES names a server (a postgres:// URL; a fresh database
// is created on it for each test and dropped afterwards); they are skipped
// when it is unset, except under CI, where that is a failure.
package e2e
