package check

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	Path     string
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand
	Lint     []string // BuildKit linter warnings
}

// ParseDockerfile parses with BuildKit's Dockerfile frontend (the parser
// `docker build` uses), collecting its linter's warnings.
func ParseDockerfile(path string) (*Dockerfile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	df := &Dockerfile{Path: path}
	for _, w := range res.Warnings {
		df.Lint = append(df.Lint, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		df.Lint = append(df.Lint, fmt.Sprintf("%s: %s", rule, msg))
	}})
	df.Stages, df.MetaArgs, err = instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, err
	}
	return df, nil
}

// ShellWords splits a POSIX shell command line into words, honouring
// quotes and backslashes; the control operators && || ; | are words of
// their own.
func ShellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\\' && i+1 < len(s):
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				inWord = true
			}
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case ch == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case ch == ' ' || ch == '\t' || ch == '\n':
			flush()
		case ch == ';' || ch == '|' || ch == '&':
			flush()
			op := string(ch)
			if i+1 < len(s) && (s[i+1] == '&' || s[i+1] == '|') {
				op += string(s[i+1])
				i++
			}
			words = append(words, op)
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// SimpleCommands splits words at control operators.
func SimpleCommands(words []string) [][]string {
	var out [][]string
	var cur []string
	for _, w := range words {
		switch w {
		case "&&", "||", ";", "|", "&":
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
		default:
			cur = append(cur, w)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// GoCommand is a `go <verb>` invocation found in a RUN instruction.
type GoCommand struct {
	Env  map[string]string // NAME=value words before `go`
	Verb string
	Args []string
}

// GoCommands returns the `go` invocations of a shell command line.
func GoCommands(cmdline string) ([]GoCommand, error) {
	words, err := ShellWords(cmdline)
	if err != nil {
		return nil, err
	}
	var out []GoCommand
	for _, sc := range SimpleCommands(words) {
		env := map[string]string{}
		i := 0
		for ; i < len(sc) && assignment.MatchString(sc[i]); i++ {
			k, v, _ := strings.Cut(sc[i], "=")
			env[k] = v
		}
		if i+1 < len(sc) && sc[i] == "go" {
			out = append(out, GoCommand{Env: env, Verb: sc[i+1], Args: sc[i+2:]})
		}
	}
	return out, nil
}

// MakefileBuildFlags returns the words of `BUILD_FLAGS := ...` in the
// Makefile.
func MakefileBuildFlags(makefile string) ([]string, error) {
	raw, err := os.ReadFile(makefile)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`(?m)^BUILD_FLAGS\s*:?=\s*(.*)$`)
	m := re.FindSubmatch(raw)
	if m == nil {
		return nil, fmt.Errorf("%s defines no BUILD_FLAGS", makefile)
	}
	return ShellWords(strings.TrimSpace(string(m[1])))
}

// ContainsSeq reports whether want appears contiguously in have.
func ContainsSeq(have, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for i := 0; i+len(want) <= len(have); i++ {
		match := true
		for j := range want {
			if have[i+j] != want[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
