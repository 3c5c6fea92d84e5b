package devtmp

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/sailmaker/sailmaker/builder/base"
	"github.com/sailmaker/sailmaker/recipes"
)

func TestDev(t *testing.T) {
	b, err := recipes.GetBase(os.Getenv("BASE"))
	if err != nil {
		t.Fatal(err)
	}
	s := base.FromRecipe(b)
	if p := os.Getenv("PLAT"); p != "" {
		s.Platforms = []string{p}
	}
	res, err := base.Build(context.Background(), s, base.Options{WorkDir: "/tmp/sm-bases-exp/work"})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	d, _ := res.Digest()
	fmt.Println("digest", d, res.Packages)
	if l := os.Getenv("LAYOUT"); l != "" {
		p, err := layout.Write(l, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendIndex(res.Index); err != nil {
			t.Fatal(err)
		}
	}
	for _, pr := range res.Platforms {
		rc := mutate.Extract(pr.Image)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if os.Getenv("LIST") != "" {
				fmt.Printf("%s %o %d:%d %d %s\n", h.Name, h.Mode, h.Uid, h.Gid, h.Size, h.Linkname)
			}
		}
		rc.Close()
	}
}
