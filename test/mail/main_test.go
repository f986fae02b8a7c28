package mail

import (
	"os"
	"testing"

	"github.com/idbridge/idbridge/internal/testlib"
)

// bin is the idbridge binary built for this test run (or the one
// IDBRIDGE_E2E_BINARY names); buildErr says why there is none.
var (
	bin      string
	buildErr error
)

func TestMain(m *testing.M) {
	var remove func()
	bin, remove, buildErr = testlib.IdbridgeBinary()
	code := m.Run()
	remove()
	os.Exit(code)
}

// needBin fails the test when the binary did not build.
func needBin(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}
