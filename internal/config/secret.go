package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// maxSecretSize bounds a secret file: a secret is a line, not a document.
const maxSecretSize = 64 << 10

// ReadSecretFile reads a secret (a password, a client secret) from a file,
// without its trailing line ends. An empty file, or one holding only line
// ends, is an error: an empty secret is always a mistake.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: cannot read %s: %s", path, describeFileErr(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: cannot read %s: %s", path, describeFileErr(err))
	}
	if len(b) > maxSecretSize {
		return nil, fmt.Errorf("config: %s is larger than %d bytes: not a secret", path, maxSecretSize)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("config: %s is empty", path)
	}
	return b, nil
}

// describeFileErr says why a file could not be read, without repeating its path.
func describeFileErr(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, io.EOF):
		return "the file is empty"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
