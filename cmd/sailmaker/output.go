package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/internal/output"
	"github.com/sailmaker/sailmaker/registry"
)

// printImages prints image results in format (checked before any work
// with checkOutput): a table for people, or JSON, YAML or CSV with every
// field of api.Image.
func printImages(w io.Writer, images []api.Image, format string) error {
	if images == nil {
		images = []api.Image{}
	}
	return writeOutput(w, format, imageList(images))
}

// imageList prints as a table for people (Texter) and as CSV rows with
// every field (Tabular).
type imageList []api.Image

func (l imageList) Header() []string {
	return []string{"name", "output", "repository", "tag", "digest", "platforms", "size", "status", "previousDigest", "bytesUploaded", "provenance", "sbom", "signature", "attestations", "kind", "packageVersion", "packageArchitecture"}
}

func (l imageList) Rows() [][]string {
	rows := make([][]string, len(l))
	for i, im := range l {
		kind, version, arch := im.Kind, "", ""
		if kind == "" {
			kind = api.KindImage
		}
		if p := im.Package; p != nil {
			version, arch = p.Version, p.Architecture
		}
		rows[i] = []string{im.Name, im.Output, im.Repository, im.Tag, im.Digest, strings.Join(im.Platforms, " "), strconv.FormatInt(im.Size, 10), im.Status, im.PreviousDigest,
			strconv.FormatInt(im.BytesUploaded, 10), im.Provenance, im.SBOM, im.Signature, im.Attestations, kind, version, arch}
	}
	return rows
}

// WriteText is the table people read: the output column only when the
// images went to more than one. Packages and binaries follow in a table of
// their own.
func (l imageList) WriteText(w io.Writer) error {
	outputs := map[string]bool{}
	var images, pkgs imageList
	for _, im := range l {
		outputs[im.Output] = true
		if im.Package != nil {
			pkgs = append(pkgs, im)
		} else {
			images = append(images, im)
		}
	}
	if len(images) > 0 || len(pkgs) == 0 {
		if err := images.writeImages(w, len(outputs) > 1); err != nil {
			return err
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if len(images) > 0 {
		fmt.Fprintln(w)
	}
	return pkgs.writePackages(w, len(outputs) > 1)
}

func (l imageList) writeImages(w io.Writer, many bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if many {
		fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tOUTPUT\tSTATUS")
	} else {
		fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tSTATUS")
	}
	for _, im := range l {
		if many {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, im.Digest, humanSize(im.Size), im.Output, api.StatusText(im.Status))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, im.Digest, humanSize(im.Size), api.StatusText(im.Status))
		}
	}
	return tw.Flush()
}

// writePackages is the packages' table: the Debian package (or the
// program, for a binary), its version, where it went.
func (l imageList) writePackages(w io.Writer, many bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if many {
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tARCH\tREPOSITORY\tTAG\tDIGEST\tSIZE\tOUTPUT\tSTATUS")
	} else {
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tARCH\tREPOSITORY\tTAG\tDIGEST\tSIZE\tSTATUS")
	}
	for _, im := range l {
		p := im.Package
		name := p.Name
		if im.Kind == api.KindBinary {
			name += " (binary)"
		}
		repo, tag := im.Repository, im.Tag
		if strings.HasPrefix(im.Output, "apt:") {
			repo, tag = im.Reference, "-"
		}
		if many {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, p.Version, p.Architecture, repo, tag, im.Digest, humanSize(im.Size), im.Output, api.StatusText(im.Status))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, p.Version, p.Architecture, repo, tag, im.Digest, humanSize(im.Size), api.StatusText(im.Status))
		}
	}
	return tw.Flush()
}

// imageFromPushed is the result of a registry.PushAll (base images).
func imageFromPushed(name string, p registry.Pushed) api.Image {
	im := api.Image{
		Name: name, Output: "registry", Repository: p.Tag.Context().String(), Tag: p.Tag.TagStr(),
		Reference: p.Tag.Context().Digest(p.Digest.String()).String(), Digest: p.Digest.String(),
		Size: p.Size, BytesUploaded: p.BytesUploaded, Status: api.StatusPushed,
	}
	switch {
	case p.Unchanged:
		im.Status = api.StatusUnchanged
	case p.Forced:
		im.Status = api.StatusMoved
	}
	if p.Previous != nil {
		im.PreviousDigest = p.Previous.String()
	}
	return im
}

func humanSize(n int64) string {
	if n == 0 {
		return "-"
	}
	return output.Bytes(n)
}
