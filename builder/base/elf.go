package base

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// elfInfo is what the dynamic loader needs for an ELF file.
type elfInfo struct {
	machine elf.Machine
	interp  string   // PT_INTERP
	needed  []string // DT_NEEDED
	runpath []string // DT_RUNPATH, or DT_RPATH without it
}

// readELF reads file's ELF header and dynamic section; it returns nil for
// a file that is not ELF.
func readELF(file string) (*elfInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil || !bytes.Equal(magic[:], []byte(elf.ELFMAG)) {
		return nil, nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("reading the ELF file %s: %w", file, err)
	}
	defer ef.Close()
	info := &elfInfo{machine: ef.Machine}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, fmt.Errorf("reading the interpreter of %s: %w", file, err)
		}
		info.interp = strings.TrimRight(string(b), "\x00")
	}
	if ef.Section(".dynamic") == nil && !hasDynamic(ef) {
		return info, nil
	}
	if info.needed, err = ef.DynString(elf.DT_NEEDED); err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("reading DT_NEEDED of %s: %w", file, err)
	}
	rp, _ := ef.DynString(elf.DT_RUNPATH)
	if len(rp) == 0 {
		rp, _ = ef.DynString(elf.DT_RPATH)
	}
	for _, r := range rp {
		for _, d := range strings.Split(r, ":") {
			if d != "" {
				info.runpath = append(info.runpath, d)
			}
		}
	}
	return info, nil
}

func hasDynamic(ef *elf.File) bool {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// ELFMachineOf is the ELF machine of file, ok=false when it is not ELF.
func ELFMachineOf(r io.ReaderAt) (elf.Machine, bool) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return 0, false
	}
	defer ef.Close()
	return ef.Machine, true
}
