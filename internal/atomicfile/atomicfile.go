// Package atomicfile writes a file so that a reader sees either the old
// file or the whole new one, never a part.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// TempPattern is the name of the temporary file a write of path uses
// before it renames it into place (os.CreateTemp's pattern): hidden, and
// named after path.
func TempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// WriteFunc creates path's folder if need be, lets write fill a temporary
// file beside path, makes it 0644 and renames it to path. On any error the
// temporary file is removed and path is as it was.
func WriteFunc(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), TempPattern(path))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Write writes data to path as WriteFunc does.
func Write(path string, data []byte) error {
	return WriteFunc(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
