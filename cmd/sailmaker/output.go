package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/api"
	"github.com/sailmaker/sailmaker/registry"
)

// imageFormats are the -o values image results print in.
var imageFormats = []string{"table", "json", "yaml", "csv"}

// checkFormat refuses an -o value that is not one of formats, before any
// work starts.
func checkFormat(flag, value string, formats []string) error {
	for _, f := range formats {
		if value == f {
			return nil
		}
	}
	return fmt.Errorf("%s %q: unknown output format; use one of %v", flag, value, formats)
}

// printImages prints image results: a table for people, or JSON, YAML or
// CSV with every field of api.Image.
func printImages(w io.Writer, images []api.Image, format string) error {
	if images == nil {
		images = []api.Image{}
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(images)
	case "yaml":
		return writeYAML(w, images)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"name", "output", "repository", "tag", "digest", "size", "status", "previousDigest", "bytesUploaded", "provenance", "sbom", "signature", "attestations"})
		for _, im := range images {
			_ = cw.Write([]string{im.Name, im.Output, im.Repository, im.Tag, im.Digest, strconv.FormatInt(im.Size, 10), im.Status, im.PreviousDigest,
				strconv.FormatInt(im.BytesUploaded, 10), im.Provenance, im.SBOM, im.Signature, im.Attestations})
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		outputs := map[string]bool{}
		for _, im := range images {
			outputs[im.Output] = true
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(outputs) > 1 {
			fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tOUTPUT\tSTATUS")
		} else {
			fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tSTATUS")
		}
		for _, im := range images {
			if len(outputs) > 1 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, im.Digest, humanSize(im.Size), im.Output, api.StatusText(im.Status))
			} else {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", im.Repository, im.Tag, im.Digest, humanSize(im.Size), api.StatusText(im.Status))
			}
		}
		return tw.Flush()
	default:
		return checkFormat("-o", format, imageFormats)
	}
}

// writeYAML writes v as YAML with the field names of its JSON.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return err
	}
	return enc.Close()
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
