package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Where a setting came from. Load records it for every setting the config
// file, the environment or --state-dir gives; commands record the flags
// they apply (SetOrigin). Messages about a setting name what the user
// actually used: "$BUILDKIT_HOST", not buildkit.address, when that is
// where the value came from.

// DefaultOrigin is the origin of a setting nothing gave.
const DefaultOrigin = "the default"

// Origin says where the setting key (its dotted config key, such as
// buildkit.address) came from, in words a user recognises: a flag
// ("--server"), an environment variable ("$BUILDKIT_HOST"), the config file
// ("buildkit.address in /etc/sailmaker/config.yaml"), or DefaultOrigin.
func (c *Config) Origin(key string) string {
	if o, ok := c.origins[key]; ok {
		return o
	}
	return DefaultOrigin
}

// SetOrigin records where key's value came from; a command that applies a
// flag to the config says so with the flag's name ("--server").
func (c *Config) SetOrigin(key, origin string) {
	if c.origins == nil {
		c.origins = map[string]string{}
	}
	c.origins[key] = origin
}

// FromDefault says whether nothing set key.
func (c *Config) FromDefault(key string) bool {
	_, ok := c.origins[key]
	return !ok
}

// settingName is how messages name key: the key, and what set it when that
// was not the config file (whose name the message carries).
func (c *Config) settingName(key string) string {
	o := c.Origin(key)
	if o == DefaultOrigin || strings.HasPrefix(o, key+" in ") {
		return key
	}
	return key + " (from " + o + ")"
}

// recordFileOrigins notes every key the config file's document sets, at
// every depth (buildkit and buildkit.address); lists are one setting.
func (c *Config) recordFileOrigins(file string, data []byte) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 {
		return
	}
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			c.SetOrigin(key, key+" in "+file)
			walk(key, n.Content[i+1])
		}
	}
	walk("", doc.Content[0])
}

// setFromEnv sets *dst from the environment variable name when it is not
// empty, and records it as the origin of key.
func (c *Config) setFromEnv(dst *string, key, name string, getenv func(string) string) {
	if v := getenv(name); v != "" {
		*dst = v
		c.SetOrigin(key, "$"+name)
	}
}

// settingError is a bad value of one setting; its message names the
// setting as settingName does.
type settingError struct {
	key, msg string
}

func (e *settingError) Error() string { return e.msg }

func (c *Config) settingErrorf(key, format string, args ...any) error {
	return &settingError{key: key, msg: c.settingName(key) + " " + fmt.Sprintf(format, args...)}
}

// notFromFile says whether err is about a setting the config file did not
// give (so the file's name would mislead).
func (c *Config) notFromFile(err error) bool {
	var se *settingError
	return errors.As(err, &se) && !strings.HasPrefix(c.Origin(se.key), se.key+" in ")
}
