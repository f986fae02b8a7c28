package mail

import (
	"fmt"
	"os"
	"testing"
)

// bin is the idbridge binary built for this test run; buildErr says why
// there is none.
var (
	bin      string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "idbridge-mailtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	bin, buildErr = BuildIdbridge(dir)
	code := m.Run()
	os.RemoveAll(dir)
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
