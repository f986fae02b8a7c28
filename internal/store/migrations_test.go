package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := LoadMigrations(fstest.MapFS{
		"migrations/0002_more.sql": file("CREATE TABLE b (x int);"),
		"migrations/0001_init.sql": file("CREATE TABLE a (x int);"),
	})
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Name != "0002_more.sql" || !strings.Contains(ms[1].SQL, "TABLE b") {
		t.Fatalf("good migrations: %+v, %v", ms, err)
	}
	for name, tc := range map[string]struct {
		fs   fstest.MapFS
		want string
	}{
		"gap":       {fstest.MapFS{"migrations/0001_a.sql": file("x"), "migrations/0003_c.sql": file("x")}, "expected version 0002"},
		"duplicate": {fstest.MapFS{"migrations/0001_a.sql": file("x"), "migrations/0001_b.sql": file("x")}, "share version 1"},
		"bad name":  {fstest.MapFS{"migrations/1_init.sql": file("x")}, "NNNN_name.sql"},
		"upper":     {fstest.MapFS{"migrations/0001_Init.sql": file("x")}, "NNNN_name.sql"},
		"empty":     {fstest.MapFS{"migrations/0001_a.sql": file(" \n")}, "is empty"},
		"none":      {fstest.MapFS{"migrations/.keep": file("")}, "NNNN_name.sql"},
		"zero":      {fstest.MapFS{"migrations/0000_a.sql": file("x")}, "expected version 0001"},
	} {
		if _, err := LoadMigrations(tc.fs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}
