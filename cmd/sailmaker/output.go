package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sailmaker/sailmaker/attest"
	"github.com/sailmaker/sailmaker/registry"
)

// imageRow is one line of a result table, and one object of its JSON.
type imageRow struct {
	Name          string `json:"name,omitempty"`
	Image         string `json:"image"`
	Tag           string `json:"tag"`
	Digest        string `json:"digest"`
	Size          int64  `json:"size"`
	Status        string `json:"status"`
	Previous      string `json:"previousDigest,omitempty"`
	BytesUploaded int64  `json:"bytesUploaded"`
	// Digests of the provenance and SBOM attachments and the signature.
	Provenance string `json:"provenance,omitempty"`
	SBOM       string `json:"sbom,omitempty"`
	Signature  string `json:"signature,omitempty"`
}

func rowsFromPushed(names []string, pushed []registry.Pushed) []imageRow {
	rows := make([]imageRow, len(pushed))
	for i, p := range pushed {
		r := imageRow{
			Image:         p.Tag.Context().String(),
			Tag:           p.Tag.TagStr(),
			Digest:        p.Digest.String(),
			Size:          p.Size,
			Status:        pushStatus(p),
			BytesUploaded: p.BytesUploaded,
		}
		if i < len(names) {
			r.Name = names[i]
		}
		if p.Previous != nil {
			r.Previous = p.Previous.String()
		}
		if d, ok := p.Attached[attest.ProvenanceArtifactType]; ok {
			r.Provenance = d.String()
		}
		if d, ok := p.Attached[attest.SBOMArtifactType]; ok {
			r.SBOM = d.String()
		}
		if p.SignatureDigest != nil {
			r.Signature = p.SignatureDigest.String()
		}
		rows[i] = r
	}
	return rows
}

func pushStatus(p registry.Pushed) string {
	switch {
	case p.Unchanged:
		return "unchanged"
	case p.Forced:
		return "pushed (tag moved by --force)"
	default:
		return "pushed"
	}
}

func printRows(w io.Writer, rows []imageRow, output string) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IMAGE\tTAG\tDIGEST\tSIZE\tSTATUS")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Image, r.Tag, r.Digest, humanSize(r.Size), r.Status)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("unknown output format %q: use table or json", output)
	}
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
