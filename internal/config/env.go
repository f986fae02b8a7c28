package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "IDBRIDGE_"

// envKey is one key that the environment can set.
type envKey struct {
	path  string // key path, e.g. mail_out.smarthost.address
	index []int  // field index path from Config
	list  bool   // a list of structures: file only
}

// envKeys lists every key reachable through yaml tags, by variable name.
func envKeys() map[string]envKey {
	keys := map[string]envKey{}
	var walk func(t reflect.Type, index []int, path, name string)
	walk = func(t reflect.Type, index []int, path, name string) {
		for i := range t.NumField() {
			f := t.Field(i)
			k := yamlKey(f)
			if k == "" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			p, nm := join(path, k), strings.ToUpper(k)
			if name != "" {
				nm = name + "__" + nm
			}
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType):
				walk(ft, idx, p, nm)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				keys[EnvPrefix+nm] = envKey{path: p, index: idx, list: true}
			default:
				keys[EnvPrefix+nm] = envKey{path: p, index: idx}
			}
		}
	}
	walk(reflect.TypeFor[Config](), nil, "", "")
	return keys
}

// EnvNames returns the name of every environment override, sorted.
func EnvNames() []string {
	var names []string
	for n, k := range envKeys() {
		if !k.list {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// ignoredEnv are IDBRIDGE_ variables that are not config keys.
func ignoredEnv(name string) bool {
	return name == EnvPrefix+"CONFIG" || strings.HasPrefix(name, EnvPrefix+"TEST_")
}

func (c *Config) applyEnv(environ []string) []*Error {
	var errs []*Error
	var keys map[string]envKey
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || ignoredEnv(name) {
			continue
		}
		if keys == nil {
			keys = envKeys()
		}
		k, ok := keys[name]
		if !ok {
			errs = append(errs, &Error{Msg: name + ": unknown environment variable" + suggestEnv(name, keys)})
			continue
		}
		if k.list {
			errs = append(errs, &Error{Path: k.path, Msg: "a list of mappings can only be set in the config file", Source: name})
			continue
		}
		c.sources[k.path] = name
		if err := setFromString(reflect.ValueOf(c).Elem().FieldByIndex(k.index), value); err != nil {
			errs = append(errs, &Error{Path: k.path, Msg: err.Error(), Source: name})
		}
	}
	return errs
}

func suggestEnv(name string, keys map[string]envKey) string {
	flat := func(s string) string { return strings.ReplaceAll(s, "_", "") }
	var hits []string
	for k, key := range keys {
		if key.list && strings.HasPrefix(name, k+"__") {
			return fmt.Sprintf(" (%s is a list of mappings: it can only be set in the config file)", key.path)
		}
		if flat(k) == flat(name) {
			hits = append(hits, k)
		}
	}
	if len(hits) == 1 {
		return fmt.Sprintf(" (did you mean %s? levels are separated by __)", hits[0])
	}
	return " (no config key has this name; levels are separated by __)"
}

// setFromString sets a scalar or a list of scalars from an environment value.
func setFromString(v reflect.Value, s string) error {
	switch p := v.Addr().Interface().(type) {
	case *Duration:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*p = d
		return nil
	case *ByteSize:
		b, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		*p = b
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not %s", s, describe(v.Type()))
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not %s", s, describe(v.Type()))
		}
		v.SetUint(n)
	case reflect.Slice:
		var items []string
		for it := range strings.SplitSeq(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		out := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			if err := setFromString(out.Index(i), it); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		v.Set(out)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
