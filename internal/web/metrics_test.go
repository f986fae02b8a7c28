package web

import "testing"

func counterValue(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.met.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func histogramCount(t *testing.T, e *env, route, code string) uint64 {
	t.Helper()
	mfs, err := e.met.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "idbridge_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var r, c string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "route":
					r = l.GetValue()
				case "code":
					c = l.GetValue()
				}
			}
			if r == route && c == code {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}
