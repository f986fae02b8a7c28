package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks the YAML node tree beside the Config structure, so that every
// unknown key and every value of the wrong type is reported with its key path
// and line, all of them rather than the first.
type decoder struct {
	errs    []*Error
	sources map[string]string
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Source: lineOf(n)})
}

func lineOf(n *yaml.Node) string {
	if n == nil || n.Line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d", n.Line)
}

func (d *decoder) decodeRoot(root *yaml.Node, c *Config) {
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail("", n, "the file must be a mapping of keys (base_url: …), found a %s", kindName(n))
		return
	}
	d.decode(n, reflect.ValueOf(c).Elem(), "")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlKey returns the key of a struct field, or "" when it has none.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.sources[path] = lineOf(n)
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(path, n, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	switch v.Kind() {
	case reflect.Struct:
		if isNull { // "http:" with nothing under it keeps the defaults
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "expected a mapping of keys, found a %s", kindName(n))
			return
		}
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "expected a list, found a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		if isNull {
			v.SetZero()
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.fail(path, n, "expected %s, found a %s", describe(v.Type()), kindName(n))
			return
		}
		if v.Kind() == reflect.String && n.Tag != "!!str" {
			// 25, true and 1.5 are fine as strings; keep the text as written.
			v.SetString(n.Value)
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.fail(path, n, "%q is not %s", n.Value, describe(v.Type()))
		}
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			fields[k] = i
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		if kn.Kind != yaml.ScalarNode {
			d.fail(path, kn, "a key must be a plain name, found a %s", kindName(kn))
			continue
		}
		if line, dup := seen[key]; dup {
			d.fail(join(path, key), kn, "duplicate key (first on line %d)", line)
			continue
		}
		seen[key] = kn.Line
		if key == "<<" {
			d.fail(join(path, key), kn, "merge keys (<<) are not supported")
			continue
		}
		idx, ok := fields[key]
		if !ok {
			d.fail(join(path, key), kn, "unknown key%s", suggest(key, fields))
			continue
		}
		d.decode(vn, v.Field(idx), join(path, key))
	}
}

// suggest names a known key close to an unknown one.
func suggest(key string, fields map[string]int) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	for k := range fields {
		if norm(k) == norm(key) {
			return fmt.Sprintf(" (did you mean %s?)", k)
		}
	}
	return ""
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number from 0 to " + strconv.FormatUint(uint64(1)<<(t.Bits())-1, 10)
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}
