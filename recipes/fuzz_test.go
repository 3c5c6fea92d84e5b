package recipes

import (
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, file := range embeddedFiles() {
		data, err := embedded.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, file := range []string{"testdata/invalid.yaml", "testdata/base.yaml", "testdata/patched/recipe.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(validDoc))
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte(`{"apiVersion": "sailmaker.dev/v1alpha1", "kind": "Recipe", "metadata": {"name": "x", "version": "${X"}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		opts := []Option{WithDir(os.DirFS("testdata/patched"))}
		r, err := Parse("fuzz.yaml", data, opts...)
		if err == nil {
			_ = r.ID()
			_ = r.Digest()
			_ = r.Warnings()
			// What Marshal writes must parse back to the same recipe.
			out, err := Marshal(r)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			back, err := Parse("back.yaml", out, opts...)
			if err != nil {
				t.Fatalf("Marshal's output does not parse: %v\n%s", err, out)
			}
			if back.Digest() != r.Digest() {
				t.Fatalf("digest changed in a round trip:\n%s", out)
			}
		} else if err.Error() == "" {
			t.Fatal("empty error")
		}
		if b, err := ParseBase("fuzz.yaml", data); err == nil {
			_ = b.Digest()
		}
		_ = KindOf(data)
	})
}
