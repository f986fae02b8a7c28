package testlib

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ModuleRoot is the folder of idbridge's go.mod, found from the working
// directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/idbridge/idbridge\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/idbridge/idbridge not found above the working directory")
		}
		dir = parent
	}
}

// BuildIdbridge builds ./cmd/idbridge into dir and returns the binary's
// path. It is built without -race: the race detector is for the test
// process; the binary under test is the one operators run.
func BuildIdbridge(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "idbridge")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/idbridge")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/idbridge: %v\n%s", err, out)
	}
	return bin, nil
}

// IdbridgeBinary is for a TestMain: the idbridge binary its tests run. That
// is the one IDBRIDGE_E2E_BINARY names (a release build, say), or else a
// fresh BuildIdbridge in a new temp folder that daemons running as another
// user can read. remove deletes that folder after m.Run; it is never nil.
func IdbridgeBinary() (bin string, remove func(), err error) {
	remove = func() {}
	if b := os.Getenv("IDBRIDGE_E2E_BINARY"); b != "" {
		return b, remove, nil
	}
	dir, err := os.MkdirTemp("", "idbridge-bin-")
	if err != nil {
		return "", remove, err
	}
	remove = func() { os.RemoveAll(dir) }
	os.Chmod(dir, 0o755)
	bin, err = BuildIdbridge(dir)
	return bin, remove, err
}
