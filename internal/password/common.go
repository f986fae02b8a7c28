package password

import (
	_ "embed"
	"strings"
	"sync"
)

//go:embed common.txt
var commonText string

var commonSet = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 1200)
	for _, line := range strings.Split(commonText, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m[strings.ToLower(line)] = struct{}{}
	}
	return m
})

// Common reports whether pw is on the built-in list of the most common
// passwords, compared case-insensitively.
func Common(pw string) bool {
	_, ok := commonSet()[strings.ToLower(pw)]
	return ok
}

// CommonCount returns the number of entries in the built-in list.
func CommonCount() int { return len(commonSet()) }
