package config

import (
	"log/slog"
	"net/url"
	"reflect"
	"sort"
)

// Redacted returns the effective configuration as nested maps keyed by the
// YAML keys, with secrets masked: the password of a URL (store, ip_ranges_urls)
// is replaced by "xxxxx". Paths of secret files are not secrets and are kept;
// the secrets themselves are never in Config. Durations are strings ("30m0s").
func (c *Config) Redacted() map[string]any {
	m, _ := redact(reflect.ValueOf(c).Elem(), "").(map[string]any)
	m["dev_mode"] = c.DevMode
	return m
}

// LogValue implements slog.LogValuer: the effective configuration as nested
// groups, secrets masked as in Redacted, for the start-up log line.
func (c *Config) LogValue() slog.Value {
	return slogValue(c.Redacted())
}

func redact(v reflect.Value, how string) any {
	switch x := v.Interface().(type) {
	case Duration:
		return x.String()
	case ByteSize:
		return int64(x)
	}
	switch v.Kind() {
	case reflect.Struct:
		m := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			if k := yamlKey(t.Field(i)); k != "" {
				m[k] = redact(v.Field(i), t.Field(i).Tag.Get("redact"))
			}
		}
		return m
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = redact(v.Index(i), how)
		}
		return out
	case reflect.String:
		s := v.String()
		if how == "url" {
			if u, err := url.Parse(s); err == nil && u.Scheme != "" {
				if q := u.Query(); q.Has("password") {
					q.Set("password", "xxxxx")
					u.RawQuery = q.Encode()
				}
				return u.Redacted()
			}
		}
		return s
	}
	return v.Interface()
}

func slogValue(x any) slog.Value {
	m, ok := x.(map[string]any)
	if !ok {
		return slog.AnyValue(x)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Attr{Key: k, Value: slogValue(m[k])})
	}
	return slog.GroupValue(attrs...)
}
