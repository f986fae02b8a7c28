package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema file of a backend.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// LoadMigrations reads migrations/NNNN_name.sql from fsys (a backend's
// embedded files) in version order. Versions must start at 0001 and have no
// gaps or duplicates, and no file may be empty; every mistake is reported.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	var errs []error
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		m := migrationName.FindStringSubmatch(name)
		if m == nil {
			errs = append(errs, fmt.Errorf("migration %q: name must be NNNN_name.sql (lower case)", name))
			continue
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			errs = append(errs, fmt.Errorf("migrations %q and %q share version %d", prev, name, v))
			continue
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, path.Join("migrations", name))
		if err != nil {
			errs = append(errs, fmt.Errorf("read migration %q: %w", name, err))
			continue
		}
		if len(strings.TrimSpace(string(b))) == 0 {
			errs = append(errs, fmt.Errorf("migration %q is empty", name))
			continue
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations")
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %q: expected version %04d (no gaps)", m.Name, i+1)
		}
	}
	return ms, nil
}
