package deb

import (
	"archive/tar"
	"io"
	"path"
	"strings"
	"time"
)

// Entry is one member of a package's data archive, as `dpkg-deb
// --contents` lists it.
type Entry struct {
	// Path is absolute, e.g. /usr/bin/tool.
	Path string `json:"path"`
	// Type is file, dir or symlink (or other).
	Type string `json:"type"`
	Mode int64  `json:"mode"`
	Size int64  `json:"size"`
	// Owner is user/group.
	Owner string    `json:"owner"`
	MTime time.Time `json:"mtime"`
}

// ReadContents lists a .deb's data archive in archive order.
func ReadContents(r io.Reader) ([]Entry, error) {
	var out []Entry
	err := walkMembers(r, func(_ string, hdr *tar.Header, _ *tar.Reader, _ time.Time, stage string) (bool, error) {
		if stage != "data" {
			return false, nil
		}
		p := "/" + strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		e := Entry{Path: p, Mode: hdr.Mode & 0o7777, Size: hdr.Size, Owner: hdr.Uname + "/" + hdr.Gname, MTime: hdr.ModTime.UTC()}
		switch hdr.Typeflag {
		case tar.TypeReg:
			e.Type = "file"
		case tar.TypeDir:
			e.Type, e.Size = "dir", 0
		case tar.TypeSymlink:
			e.Type = "symlink"
		default:
			e.Type = "other"
		}
		out = append(out, e)
		return false, nil
	})
	return out, err
}
