package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sailmaker/sailmaker/api"
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
	return []string{"name", "output", "repository", "tag", "digest", "platforms", "size", "status", "previousDigest", "bytesUploaded", "provenance", "sbom", "signature", "attestations"}
}

func (l imageList) Rows() [][]string {
	rows := make([][]string, len(l))
	for i, im := range l {
		rows[i] = []string{im.Name, im.Output, im.Repository, im.Tag, im.Digest, strings.Join(im.Platforms, " "), strconv.FormatInt(im.Size, 10), im.Status, im.PreviousDigest,
			strconv.FormatInt(im.BytesUploaded, 10), im.Provenance, im.SBOM, im.Signature, im.Attestations}
	}
	return rows
}

// WriteText is the table people read: the output column only when the
// images went to more than one.
func (l imageList) WriteText(w io.Writer) error {
	outputs := map[string]bool{}
	for _, im := range l {
		outputs[im.Output] = true
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(outputs) > 1 {
		fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tOUTPUT\tSTATUS")
	} else {
		fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tSTATUS")
	}
	for _, im := range l {
		if len(outputs) > 1 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, im.Digest, humanSize(im.Size), im.Output, api.StatusText(im.Status))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, im.Digest, humanSize(im.Size), api.StatusText(im.Status))
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
	switch {
	case n == 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
