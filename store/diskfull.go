package store

import (
	"errors"
	"strings"
	"syscall"
)

// sqliteFull is SQLite's result code for a write that found no room
// (SQLITE_FULL); extended codes keep it in their low byte.
const sqliteFull = 13

// DiskFull says whether err is a write that failed for lack of space: the
// database's (SQLite's "database or disk is full"), a file's (ENOSPC,
// EDQUOT), or one reported only as text by another process (BuildKit
// writing a build's output to the state directory).
func DiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == sqliteFull {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"no space left on device", "disk quota exceeded", "database or disk is full"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
