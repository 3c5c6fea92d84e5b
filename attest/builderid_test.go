package attest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestWorkerBuilderID(t *testing.T) {
	assert.Equal(t, BuilderID, WorkerBuilderID(""))
	assert.Equal(t, "https://sailmaker.dev/sailmaker/workers/bk-1", WorkerBuilderID("bk-1"))
	for id, ok := range map[string]bool{
		BuilderID:                   true,
		WorkerBuilderID("bk-1"):     true,
		BuilderID + "/workers/":     false,
		BuilderID + "/workers/a/b":  false,
		"https://example.com/other": false,
		BuilderID + "x":             false,
	} {
		assert.Equal(t, ok, IsBuilderID(id), id)
	}
}
