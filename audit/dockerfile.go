package audit

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DockerfileImage is what a Dockerfile says about the image its final
// stage makes: the image it builds on, and what it sets over that. Fields
// a Dockerfile leaves alone (no USER, no WORKDIR) are nil: the image
// keeps its base's.
type DockerfileImage struct {
	// Stages are the stages the final image is built through, in build
	// order (a stage FROM another stage continues it).
	Stages []string
	// Base is the image the first of those stages is FROM, expanded.
	Base       string
	User       *string
	Workdir    *string
	Env        map[string]string
	Entrypoint []string
	Cmd        []string
	// EntrypointSet and CmdSet say whether ENTRYPOINT and CMD appear
	// (setting ENTRYPOINT clears the base's CMD, as Docker does).
	EntrypointSet bool
	CmdSet        bool
	// Files are the paths COPY and ADD write, by destination.
	Files map[string]DockerfileFile
	// Notes are instructions whose effect is not compared (RUN: what it
	// writes cannot be known without running it).
	Notes []string
}

// DockerfileFile is one file a COPY or ADD writes.
type DockerfileFile struct {
	Source string `json:"source"`
	Line   int    `json:"line"`
	// Dir: the source may be a directory or pattern; the files under
	// Dest are not known without the build context.
	Dir bool `json:"dir,omitempty"`
}

// ParseDockerfile reads a Dockerfile with BuildKit's own parser and works
// out what its final stage sets, with args as the build arguments (and
// TARGETOS, TARGETARCH, TARGETVARIANT, TARGETPLATFORM for platform, as
// BuildKit defines them).
func ParseDockerfile(dockerfile []byte, args map[string]string, platform string) (*DockerfileImage, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("%w: the Dockerfile: %v", ErrBadInput, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: the Dockerfile: %v", ErrBadInput, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%w: the Dockerfile has no FROM", ErrBadInput)
	}
	lex := shell.NewLex(res.EscapeToken)
	auto := automaticArgs(platform)

	// Global (meta) ARGs: their defaults, then the build arguments.
	global := map[string]string{}
	for k, v := range auto {
		global[k] = v
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			v, given := args[kv.Key]
			if !given && kv.Value != nil {
				if v, err = expandWord(lex, *kv.Value, global); err != nil {
					return nil, fmt.Errorf("%w: ARG %s: %v", ErrBadInput, kv.Key, err)
				}
			}
			global[kv.Key] = v
		}
	}

	// The final stage and the stages it is built on.
	byName := map[string]int{}
	for i, s := range stages {
		if s.Name != "" {
			byName[strings.ToLower(s.Name)] = i
		}
	}
	var chain []int
	base := ""
	for i := len(stages) - 1; ; {
		chain = append(chain, i)
		from, err := expandWord(lex, stages[i].BaseName, global)
		if err != nil {
			return nil, fmt.Errorf("%w: FROM %s: %v", ErrBadInput, stages[i].BaseName, err)
		}
		j, isStage := byName[strings.ToLower(from)]
		if !isStage || j >= i {
			base = from
			break
		}
		if len(chain) > len(stages) {
			return nil, fmt.Errorf("%w: the Dockerfile's stages form a cycle", ErrBadInput)
		}
		i = j
	}

	out := &DockerfileImage{Base: base, Env: map[string]string{}, Files: map[string]DockerfileFile{}}
	env := map[string]string{} // ENV, then ARG values, as expansion sees them
	workdir := "/"
	for k := len(chain) - 1; k >= 0; k-- {
		st := stages[chain[k]]
		name := st.Name
		if name == "" {
			name = fmt.Sprintf("stage %d", chain[k])
		}
		out.Stages = append(out.Stages, name)
		declared := map[string]string{} // this stage's ARGs
		vars := func() map[string]string {
			m := map[string]string{}
			for k, v := range declared {
				m[k] = v
			}
			for k, v := range env {
				m[k] = v
			}
			return m
		}
		for _, c := range st.Commands {
			line := 0
			if loc := c.Location(); len(loc) > 0 {
				line = loc[0].Start.Line
			}
			switch c := c.(type) {
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					v, given := args[kv.Key]
					switch {
					case given:
					case kv.Value != nil:
						if v, err = expandWord(lex, *kv.Value, vars()); err != nil {
							return nil, lineErr(line, err)
						}
					default:
						v = global[kv.Key]
					}
					declared[kv.Key] = v
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					v, err := expandWord(lex, kv.Value, vars())
					if err != nil {
						return nil, lineErr(line, err)
					}
					env[kv.Key] = v
					out.Env[kv.Key] = v
				}
			case *instructions.UserCommand:
				v, err := expandWord(lex, c.User, vars())
				if err != nil {
					return nil, lineErr(line, err)
				}
				out.User = &v
			case *instructions.WorkdirCommand:
				v, err := expandWord(lex, c.Path, vars())
				if err != nil {
					return nil, lineErr(line, err)
				}
				if !path.IsAbs(v) {
					v = path.Join(workdir, v)
				}
				workdir = path.Clean(v)
				out.Workdir = &workdir
			case *instructions.EntrypointCommand:
				out.Entrypoint, out.EntrypointSet = execForm(c.ShellDependantCmdLine), true
				if !out.CmdSet {
					out.Cmd = nil
				}
			case *instructions.CmdCommand:
				out.Cmd, out.CmdSet = execForm(c.ShellDependantCmdLine), true
			case *instructions.CopyCommand:
				if err := addFiles(out, lex, vars(), c.SourcesAndDest, workdir, line); err != nil {
					return nil, err
				}
			case *instructions.AddCommand:
				if err := addFiles(out, lex, vars(), c.SourcesAndDest, workdir, line); err != nil {
					return nil, err
				}
			case *instructions.RunCommand:
				out.Notes = append(out.Notes, fmt.Sprintf("line %d: RUN %s: what it writes is not compared", line, strings.Join(c.CmdLine, " ")))
			}
		}
	}
	return out, nil
}

// automaticArgs are the build arguments BuildKit defines for a platform.
func automaticArgs(platform string) map[string]string {
	parts := strings.Split(platform, "/")
	m := map[string]string{"TARGETPLATFORM": platform}
	if len(parts) > 0 {
		m["TARGETOS"] = parts[0]
	}
	if len(parts) > 1 {
		m["TARGETARCH"] = parts[1]
	}
	if len(parts) > 2 {
		m["TARGETVARIANT"] = parts[2]
	}
	return m
}

func expandWord(lex *shell.Lex, word string, vars map[string]string) (string, error) {
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	v, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return v, err
}

func lineErr(line int, err error) error {
	return fmt.Errorf("%w: the Dockerfile, line %d: %v", ErrBadInput, line, err)
}

// execForm is a command line as the image config holds it: the JSON form
// as written, the shell form run by /bin/sh -c.
func execForm(c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return []string{"/bin/sh", "-c", strings.Join(c.CmdLine, " ")}
	}
	return append([]string(nil), c.CmdLine...)
}

// addFiles records the destinations of a COPY or ADD.
func addFiles(out *DockerfileImage, lex *shell.Lex, vars map[string]string, sd instructions.SourcesAndDest, workdir string, line int) error {
	dest, err := expandWord(lex, sd.DestPath, vars)
	if err != nil {
		return lineErr(line, err)
	}
	toDir := strings.HasSuffix(dest, "/") || len(sd.SourcePaths) > 1
	if !path.IsAbs(dest) {
		dest = path.Join(workdir, dest)
	}
	dest = path.Clean(dest)
	for _, src := range sd.SourcePaths {
		s, err := expandWord(lex, src, vars)
		if err != nil {
			return lineErr(line, err)
		}
		d := dest
		if toDir {
			d = path.Join(dest, path.Base(s))
		}
		out.Files[d] = DockerfileFile{Source: s, Line: line, Dir: strings.ContainsAny(s, "*?[") || strings.HasSuffix(s, "/") || s == "."}
	}
	for _, sc := range sd.SourceContents {
		d := dest
		if toDir {
			d = path.Join(dest, path.Base(sc.Path))
		}
		out.Files[d] = DockerfileFile{Source: "(heredoc " + sc.Path + ")", Line: line}
	}
	return nil
}
