package api_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/api"
)

// Timings are seconds in JSON, and read back to the same durations.
func TestTimingsJSON(t *testing.T) {
	in := api.Timings{Fetch: 1500 * time.Millisecond, Solve: 2 * time.Minute, Assemble: 250 * time.Millisecond, Push: time.Second, Total: 125*time.Second + 750*time.Millisecond}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"fetch":1.5,"solve":120,"assemble":0.25,"push":1,"total":125.75}`, string(b))
	var out api.Timings
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)
	assert.Error(t, json.Unmarshal([]byte(`{"fetch":"soon"}`), &out))

	// --check-reproducible's second build has a number of its own.
	in.Check = 90 * time.Second
	b, err = json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"fetch":1.5,"solve":120,"assemble":0.25,"push":1,"check":90,"total":125.75}`, string(b))
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)
}

// A zero trigger time is left out; the moved status reads as people say it.
func TestTriggerAndStatus(t *testing.T) {
	b, err := json.Marshal(api.Trigger{Actor: "alice", Kind: api.TriggerCLI})
	require.NoError(t, err)
	assert.JSONEq(t, `{"actor":"alice","kind":"cli"}`, string(b))
	assert.Equal(t, "pushed (tag moved by --force)", api.StatusText(api.StatusMoved))
	assert.Equal(t, "unchanged", api.StatusText(api.StatusUnchanged))
}
