package plans

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sealflow/sealflow/steps"
)

// coerce converts a rendered value to the type a kind declares.
func coerce(v any, t steps.ParamType) (any, error) {
	switch t {
	case steps.String:
		if s, ok := scalarString(v); ok {
			return s, nil
		}
	case steps.Int:
		switch x := v.(type) {
		case int:
			return x, nil
		case int64:
			return int(x), nil
		case uint64:
			if x <= math.MaxInt64 {
				return int(x), nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int(x), nil
			}
			return nil, fmt.Errorf("want an integer, got a number with a fraction")
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("want an integer, got a string that is not one")
			}
			return n, nil
		}
	case steps.Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.TrimSpace(x) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return nil, fmt.Errorf("want true or false, got a string that is neither")
		}
	case steps.StringList:
		switch x := v.(type) {
		case nil:
			return []string{}, nil
		case []string:
			return x, nil
		case []any:
			out := make([]string, len(x))
			for i, item := range x {
				s, ok := scalarString(item)
				if !ok {
					return nil, fmt.Errorf("item %d: want a string, got %s", i, goTypeName(item))
				}
				out[i] = s
			}
			return out, nil
		}
	case steps.StringMap:
		switch x := v.(type) {
		case nil:
			return map[string]string{}, nil
		case map[string]string:
			return x, nil
		case map[string]any:
			out := make(map[string]string, len(x))
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				s, ok := scalarString(x[k])
				if !ok {
					return nil, fmt.Errorf("key %q: want a string, got %s", k, goTypeName(x[k]))
				}
				out[k] = s
			}
			return out, nil
		}
	case steps.Duration:
		switch x := v.(type) {
		case time.Duration:
			return x, nil
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("want a duration such as 30s or 5m, got a string that is not one")
			}
			return d, nil
		}
		return nil, fmt.Errorf("want a duration such as 30s or 5m, got %s", goTypeName(v))
	}
	return nil, fmt.Errorf("want %s, got %s", article(t), goTypeName(v))
}

// scalarString formats a scalar; nil is "".
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, time.Duration:
		return fmt.Sprint(x), true
	}
	return "", false
}

func article(t steps.ParamType) string {
	switch t {
	case steps.Int:
		return "an integer"
	case steps.Bool:
		return "true or false"
	case steps.StringList:
		return "a list of strings"
	case steps.StringMap:
		return "a map of strings"
	case steps.Duration:
		return "a duration"
	}
	return "a string"
}

func goTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "integer"
	case float32, float64:
		return "number"
	case time.Duration:
		return "duration"
	case []any, []string:
		return "list"
	case map[string]any, map[string]string:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

// checkLiteral checks, at load, the parts of a `with` value that hold no
// ${{ }}: a value with no expression must already have the declared type.
func checkLiteral(v *tval, t steps.ParamType) error {
	if !v.hasTemplate() {
		_, err := coerce(v.eval(nil, wantsText(t)), t)
		return err
	}
	switch v.kind {
	case tList:
		if t != steps.StringList {
			return fmt.Errorf("want %s, got list", article(t))
		}
		for i, item := range v.list {
			if item.kind == tList || item.kind == tMap {
				return fmt.Errorf("item %d: want a string, got %s", i, kindName(item.kind))
			}
		}
	case tMap:
		if t != steps.StringMap {
			return fmt.Errorf("want %s, got map", article(t))
		}
		for _, k := range v.keys {
			if item := v.m[k]; item.kind == tList || item.kind == tMap {
				return fmt.Errorf("key %q: want a string, got %s", k, kindName(item.kind))
			}
		}
	}
	return nil
}

func kindName(k tkind) string {
	if k == tList {
		return "list"
	}
	return "map"
}

func wantsText(t steps.ParamType) bool {
	return t == steps.String || t == steps.StringList || t == steps.StringMap
}
