package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/blakesmith/ar"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Field is one field of a control paragraph.
type Field struct {
	Name string
	// Value is the field's value with continuation lines joined by "\n"
	// (each without its leading space).
	Value string
}

// Control is a package's control paragraph (DEBIAN/control).
type Control struct {
	// Raw is the paragraph as the package holds it, ending with one "\n".
	Raw string
	// Fields are its fields in order.
	Fields []Field
}

// Get returns the value of the named field (case-insensitive), or "".
func (c *Control) Get(name string) string {
	for _, f := range c.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// ParseControl parses one deb822 paragraph (a control file).
func ParseControl(text string) (*Control, error) {
	c := &Control{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var lines []string
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			if len(c.Fields) > 0 {
				// A blank line ends the paragraph; anything after it is a second
				// paragraph, which a control file does not have.
				for sc.Scan() {
					if strings.TrimSpace(sc.Text()) != "" {
						return nil, errors.New("control file has more than one paragraph")
					}
				}
				break
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
		if line[0] == ' ' || line[0] == '\t' {
			if len(c.Fields) == 0 {
				return nil, fmt.Errorf("control file: continuation line %q before any field", line)
			}
			f := &c.Fields[len(c.Fields)-1]
			f.Value += "\n" + line[1:]
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("control file: %q is not a field", line)
		}
		c.Fields = append(c.Fields, Field{Name: name, Value: strings.TrimSpace(value)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(c.Fields) == 0 {
		return nil, errors.New("control file is empty")
	}
	c.Raw = strings.Join(lines, "\n") + "\n"
	return c, nil
}

// Info is what ReadInfo reads from a .deb.
type Info struct {
	Control *Control
	// MTime is the modification time of the package's first member
	// (debian-binary): for packages from Build, Package.MTime.
	MTime time.Time
}

// ReadInfo reads a .deb's control paragraph and time. It checks the
// archive's shape: debian-binary "2.x", then control.tar[.gz|.xz|.zst].
func ReadInfo(r io.Reader) (*Info, error) {
	info := &Info{}
	err := walkMembers(r, func(name string, hdr *tar.Header, tr *tar.Reader, mtime time.Time, stage string) (bool, error) {
		switch stage {
		case "debian-binary":
			info.MTime = mtime
			return false, nil
		case "control":
			if path.Clean(hdr.Name) != "control" {
				return false, nil
			}
			data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return false, fmt.Errorf("reading control: %w", err)
			}
			c, err := ParseControl(string(data))
			if err != nil {
				return false, err
			}
			info.Control = c
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if info.Control == nil {
		return nil, errors.New("not a Debian package: no control file in control.tar")
	}
	return info, nil
}

// ReadDataFile returns the content of the file at dest (absolute, e.g.
// /usr/share/doc/foo/copyright) in a .deb's data archive.
func ReadDataFile(r io.Reader, dest string) ([]byte, error) {
	want := strings.TrimPrefix(path.Clean(dest), "/")
	var out []byte
	found := false
	err := walkMembers(r, func(name string, hdr *tar.Header, tr *tar.Reader, _ time.Time, stage string) (bool, error) {
		if stage != "data" || strings.TrimPrefix(path.Clean(hdr.Name), "/") != want {
			return false, nil
		}
		if hdr.Typeflag != tar.TypeReg {
			return false, fmt.Errorf("%s is not a regular file in the package", dest)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return false, fmt.Errorf("reading %s: %w", dest, err)
		}
		out, found = data, true
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%s is not in the package", dest)
	}
	return out, nil
}

// walkMembers reads the ar archive and calls fn for debian-binary (stage
// "debian-binary", nil header), then for each entry of control.tar.* (stage
// "control") and data.tar.* (stage "data"), until fn says stop.
func walkMembers(r io.Reader, fn func(member string, hdr *tar.Header, tr *tar.Reader, mtime time.Time, stage string) (bool, error)) error {
	rd := ar.NewReader(r)
	first := true
	for {
		h, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a Debian package (reading the ar archive): %w", err)
		}
		name := strings.TrimSuffix(strings.TrimSpace(h.Name), "/")
		if first {
			first = false
			if name != "debian-binary" {
				return fmt.Errorf("not a Debian package: first member is %q, not debian-binary", name)
			}
			data, err := io.ReadAll(io.LimitReader(rd, 64))
			if err != nil {
				return err
			}
			if !bytes.HasPrefix(data, []byte("2.")) {
				return fmt.Errorf("unsupported Debian package format %q", strings.TrimSpace(string(data)))
			}
			if stop, err := fn(name, nil, nil, h.ModTime, "debian-binary"); err != nil || stop {
				return err
			}
			continue
		}
		var stage string
		switch {
		case strings.HasPrefix(name, "control.tar"):
			stage = "control"
		case strings.HasPrefix(name, "data.tar"):
			stage = "data"
		default:
			continue // _gpg* signatures and the like
		}
		dec, err := decompressor(name, rd)
		if err != nil {
			return err
		}
		stop, err := walkTar(name, dec, h.ModTime, stage, fn)
		dec.Close()
		if err != nil || stop {
			return err
		}
	}
}

func walkTar(name string, r io.Reader, mtime time.Time, stage string, fn func(member string, hdr *tar.Header, tr *tar.Reader, mtime time.Time, stage string) (bool, error)) (bool, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading %s: %w", name, err)
		}
		if stop, err := fn(name, hdr, tr, mtime, stage); err != nil || stop {
			return stop, err
		}
	}
}

func decompressor(name string, r io.Reader) (io.ReadCloser, error) {
	switch path.Ext(name) {
	case ".tar":
		return io.NopCloser(r), nil
	case ".gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return zr, nil
	case ".xz":
		zr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return io.NopCloser(zr), nil
	case ".zst":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("unsupported member %s in the package", name)
}
