package tail

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLines(t *testing.T) {
	assert.Equal(t, "c\nd", Lines("a\nb\nc\nd\n", 2))
	assert.Equal(t, "a", Lines("a", 5))
	p := filepath.Join(t.TempDir(), "log")
	assert.Equal(t, "(no log)", File(p, 3))
	assert.NoError(t, os.WriteFile(p, []byte("1\n2\n3\n"), 0o644))
	assert.Equal(t, "2\n3", File(p, 2))
}
