package output_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/sailmaker/sailmaker/internal/output"
)

type row struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Digest  string `json:"digest"`
	Count   int    `json:"count"`
	On      bool   `json:"on"`
}

type rows []row

func (r rows) Header() []string { return []string{"NAME", "VERSION", "DIGEST", "NOTE"} }
func (r rows) Rows() [][]string {
	var out [][]string
	for _, x := range r {
		out = append(out, []string{x.Name, x.Version, x.Digest, "base " + x.Digest})
	}
	return out
}

type doc struct {
	ID    string   `json:"id"`
	Items []string `json:"items"`
	Empty []string `json:"empty"`
}

func (d doc) WriteText(w io.Writer) error {
	_, err := io.WriteString(w, "# "+d.ID+"\n")
	return err
}

func TestParse(t *testing.T) {
	for _, f := range output.Formats {
		got, err := output.Parse(string(f))
		require.NoError(t, err)
		assert.Equal(t, f, got)
	}
	_, err := output.Parse("xml")
	assert.ErrorIs(t, err, output.ErrUnknownFormat)
	assert.EqualError(t, err, `unknown output format "xml": use table, json, yaml or csv`)

	_, err = output.Parse("csv", output.Documents...)
	assert.ErrorIs(t, err, output.ErrUnknownFormat)
	assert.EqualError(t, err, `output format "csv" does not apply here: use table, json or yaml`)
	_, err = output.Parse("", output.Documents...)
	assert.Error(t, err, "no format is not a format")
}

func TestWriteRows(t *testing.T) {
	d := "sha256:" + strings.Repeat("0a", 32)
	v := rows{{Name: "a,b", Version: "1.0", Digest: d, Count: 3, On: true}, {Name: "c", Digest: d}}

	var b bytes.Buffer
	require.NoError(t, output.Write(&b, output.Table, v))
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	require.Len(t, lines, 3)
	assert.Regexp(t, `^NAME\s+VERSION\s+DIGEST\s+NOTE$`, lines[0])
	assert.Regexp(t, `^a,b\s+1\.0\s+`+d+`\s+base sha256:0a0a0a0a0a0a$`, lines[1], "the DIGEST column is whole, others shortened")
	assert.Regexp(t, `^c\s+-\s+`, lines[2], "an empty cell is -")

	b.Reset()
	require.NoError(t, output.Write(&b, output.CSV, v))
	recs, err := csv.NewReader(&b).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"NAME", "VERSION", "DIGEST", "NOTE"}, {"a,b", "1.0", d, "base " + d}, {"c", "", d, "base " + d}}, recs)

	b.Reset()
	require.NoError(t, output.Write(&b, output.JSON, v))
	var fromJSON []map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &fromJSON))

	b.Reset()
	require.NoError(t, output.Write(&b, output.YAML, v))
	var fromYAML []map[string]any
	require.NoError(t, yaml.Unmarshal(b.Bytes(), &fromYAML))
	// The same document: JSON numbers are float64, YAML's ints.
	require.Len(t, fromYAML, 2)
	assert.Equal(t, "a,b", fromYAML[0]["name"])
	assert.Equal(t, "1.0", fromYAML[0]["version"], "a string that looks like a number stays a string")
	assert.Equal(t, 3, fromYAML[0]["count"])
	assert.Equal(t, true, fromYAML[0]["on"])
	assert.Equal(t, fromJSON[1]["digest"], fromYAML[1]["digest"])
	assert.NotContains(t, fromYAML[1], "version", "omitempty as in JSON")
	assert.True(t, strings.HasPrefix(b.String(), "- name: a,b\n  version: \"1.0\"\n"), "block style, keys in JSON order:\n%s", b.String())
}

func TestWriteDocument(t *testing.T) {
	v := doc{ID: "x@1", Items: []string{"true", "b"}, Empty: []string{}}
	var b bytes.Buffer
	require.NoError(t, output.Write(&b, output.Table, v))
	assert.Equal(t, "# x@1\n", b.String(), "a Texter's own view")

	b.Reset()
	require.NoError(t, output.Write(&b, output.YAML, v))
	assert.Equal(t, "id: x@1\nitems:\n  - \"true\"\n  - b\nempty: []\n", b.String())

	err := output.Write(&b, output.CSV, v)
	assert.ErrorIs(t, err, output.ErrUnknownFormat)
	assert.ErrorContains(t, err, "use table, json or yaml")

	err = output.Write(&b, output.Table, struct{ A int }{1})
	assert.ErrorContains(t, err, `output format "table" does not apply here`)
	assert.ErrorIs(t, output.Write(&b, "xml", v), output.ErrUnknownFormat)
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0:              "0 B",
		1023:           "1023 B",
		1024:           "1.0 KiB",
		1536:           "1.5 KiB",
		96 << 20:       "96.0 MiB",
		156_966_912:    "149.7 MiB",
		25_232_932_864: "23.5 GiB",
		3 << 40:        "3.0 TiB",
	} {
		if got := output.Bytes(n); got != want {
			t.Errorf("output.Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
