package web

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// defaultLang is the catalogue every other one falls back to; it must hold
// every key.
const defaultLang = "en"

// catalog holds the user-visible strings, one map per language, read from
// catalog/<lang>.json. Messages may hold named placeholders, "{name}", filled
// by the pairs passed to T.
type catalog struct {
	langs []string                     // available languages, defaultLang first
	msgs  map[string]map[string]string // lang → key → message
}

func loadCatalog(fsys fs.FS) (*catalog, error) {
	files, err := fs.Glob(fsys, "catalog/*.json")
	if err != nil {
		return nil, err
	}
	c := &catalog{msgs: map[string]map[string]string{}}
	for _, f := range files {
		lang := strings.TrimSuffix(path.Base(f), ".json")
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", f, err)
		}
		c.msgs[lang] = m
		c.langs = append(c.langs, lang)
	}
	en, ok := c.msgs[defaultLang]
	if !ok {
		return nil, fmt.Errorf("catalogue: %s.json is missing", defaultLang)
	}
	for lang, m := range c.msgs {
		for k := range m {
			if _, ok := en[k]; !ok {
				return nil, fmt.Errorf("catalogue %s: key %q is not in %s.json", lang, k, defaultLang)
			}
		}
	}
	sort.Slice(c.langs, func(i, j int) bool {
		if (c.langs[i] == defaultLang) != (c.langs[j] == defaultLang) {
			return c.langs[i] == defaultLang
		}
		return c.langs[i] < c.langs[j]
	})
	return c, nil
}

// has reports whether the default catalogue defines key.
func (c *catalog) has(key string) bool {
	_, ok := c.msgs[defaultLang][key]
	return ok
}

// T returns the message key in lang (falling back to the default language),
// with "{name}" placeholders replaced from the name, value pairs in args. An
// unknown key comes back bracketed so that it shows in tests and on the page.
func (c *catalog) T(lang, key string, args ...any) string {
	msg, ok := c.msgs[lang][key]
	if !ok {
		msg, ok = c.msgs[defaultLang][key]
	}
	if !ok {
		return "[[" + key + "]]"
	}
	if len(args) == 0 {
		return msg
	}
	pairs := make([]string, 0, len(args))
	for i := 0; i+1 < len(args); i += 2 {
		pairs = append(pairs, "{"+fmt.Sprint(args[i])+"}", fmt.Sprint(args[i+1]))
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// pick chooses the best available language for an Accept-Language header
// (RFC 9110, section 12.5.4): the highest q wins, a region falls back to its
// primary language ("pt-BR" → "pt"), and nothing acceptable means the default.
func (c *catalog) pick(header string) string {
	type pref struct {
		tag string
		q   float64
	}
	var prefs []pref
	for part := range strings.SplitSeq(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		if tag == "" || len(tag) > 35 {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				} else {
					q = 0
				}
			}
		}
		if q > 0 {
			prefs = append(prefs, pref{tag, q})
		}
		if len(prefs) > 20 {
			break
		}
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	for _, p := range prefs {
		if p.tag == "*" {
			return defaultLang
		}
		if slices.Contains(c.langs, p.tag) {
			return p.tag
		}
		primary, _, _ := strings.Cut(p.tag, "-")
		if slices.Contains(c.langs, primary) {
			return primary
		}
	}
	return defaultLang
}
