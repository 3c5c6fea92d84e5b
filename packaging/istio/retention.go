package istio

import (
	"fmt"
	"strconv"
	"strings"
)

// Retention says which of the available istioctl versions the package
// keeps. The zero value keeps all of them.
type Retention struct {
	// NewestPerMinor, when above 0, keeps the newest N versions of each
	// release line (MAJOR.MINOR); pre-releases count as versions of their
	// line and come before its release.
	NewestPerMinor int
	// Versions, when set, keeps exactly these versions; each must be
	// available.
	Versions []string
}

// ParseRetention reads a retention setting as a config file or a flag
// gives it:
//
//	all                       every available version (also "")
//	newest-per-minor=N        the newest N of each MAJOR.MINOR line
//	versions=1.24.2,1.23.4    exactly these
func ParseRetention(s string) (Retention, error) {
	s = strings.TrimSpace(s)
	key, val, hasVal := strings.Cut(s, "=")
	switch {
	case s == "" || s == "all":
		return Retention{}, nil
	case key == "newest-per-minor" && hasVal:
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return Retention{}, fmt.Errorf("retention %q: newest-per-minor needs a whole number of at least 1, e.g. newest-per-minor=2", s)
		}
		return Retention{NewestPerMinor: n}, nil
	case key == "versions" && hasVal:
		var list []string
		for _, v := range strings.Split(val, ",") {
			if v = strings.TrimSpace(v); v != "" {
				list = append(list, v)
			}
		}
		if len(list) == 0 {
			return Retention{}, fmt.Errorf("retention %q: versions= lists no version; give at least one, or all", s)
		}
		r := Retention{Versions: list}
		if err := r.Validate(); err != nil {
			return Retention{}, err
		}
		return r, nil
	}
	return Retention{}, fmt.Errorf("retention %q: give all, newest-per-minor=N or versions=V1,V2,...", s)
}

// String is the setting as ParseRetention reads it.
func (r Retention) String() string {
	switch {
	case len(r.Versions) > 0:
		return "versions=" + strings.Join(r.Versions, ",")
	case r.NewestPerMinor > 0:
		return fmt.Sprintf("newest-per-minor=%d", r.NewestPerMinor)
	}
	return "all"
}

// Validate rejects settings that contradict themselves.
func (r Retention) Validate() error {
	if r.NewestPerMinor < 0 {
		return fmt.Errorf("retention: newest-per-minor must be at least 1 (0 keeps all), not %d", r.NewestPerMinor)
	}
	if r.NewestPerMinor > 0 && r.Versions != nil {
		return fmt.Errorf("retention: give newest-per-minor or versions, not both")
	}
	if r.Versions != nil && len(r.Versions) == 0 {
		return fmt.Errorf("retention: versions= lists no version; give at least one, or all")
	}
	seen := map[string]bool{}
	for _, v := range r.Versions {
		if _, err := ParseVersion(v); err != nil {
			return fmt.Errorf("retention: versions: %q: %v", v, err)
		}
		if seen[v] {
			return fmt.Errorf("retention: versions: %s is listed twice", v)
		}
		seen[v] = true
	}
	return nil
}

// Select returns the versions to keep out of available, newest first, and
// the ones left out. Every version must parse (see ParseVersion); a version
// the setting names but available lacks is an error.
func (r Retention) Select(available []Version) (keep, drop []Version, err error) {
	if err := r.Validate(); err != nil {
		return nil, nil, err
	}
	sorted := append([]Version(nil), available...)
	sortNewestFirst(sorted)
	switch {
	case len(r.Versions) > 0:
		want := map[string]bool{}
		for _, v := range r.Versions {
			want[v] = true
		}
		for _, v := range sorted {
			if want[v.String()] {
				keep = append(keep, v)
				delete(want, v.String())
			} else {
				drop = append(drop, v)
			}
		}
		for _, v := range r.Versions {
			if want[v] {
				names := make([]string, len(sorted))
				for i, a := range sorted {
					names[i] = a.String()
				}
				return nil, nil, fmt.Errorf("retention: versions: istioctl %s is not available (available: %s)", v, strings.Join(names, ", "))
			}
		}
	case r.NewestPerMinor > 0:
		perLine := map[string]int{}
		for _, v := range sorted {
			if perLine[v.MinorLine()] < r.NewestPerMinor {
				perLine[v.MinorLine()]++
				keep = append(keep, v)
			} else {
				drop = append(drop, v)
			}
		}
	default:
		keep = sorted
	}
	return keep, drop, nil
}
