package check

import (
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/pulse-iot/pulse/internal/config"
)

// The flags the build contract puts in the Makefile, used only while the
// Makefile does not exist yet (outside CI).
const contractBuildFlags = `-trimpath -ldflags="-s -w"`

var distrolessNonroot = regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot@sha256:[0-9a-f]{64}$`)

func buildFlags(t *testing.T, root string) []string {
	flags, err := MakefileBuildFlags(filepath.Join(root, "Makefile"))
	if err == nil {
		return flags
	}
	if InCI() {
		t.Fatalf("Makefile: %v (the Dockerfiles must build with the Makefile's BUILD_FLAGS)", err)
	}
	t.Logf("Makefile: %v; comparing with the contract's BUILD_FLAGS %s instead", err, contractBuildFlags)
	flags, _ = ShellWords(contractBuildFlags)
	return flags
}

func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	flags := buildFlags(t, root)
	for _, svc := range PulseServices {
		t.Run(svc, func(t *testing.T) {
			df, err := ParseDockerfile(filepath.Join(root, "Dockerfile."+svc))
			if err != nil {
				t.Fatalf("BuildKit parser: %v", err)
			}
			for _, w := range df.Lint {
				t.Errorf("BuildKit lint: %s", w)
			}
			if len(df.Stages) < 2 {
				t.Fatalf("want a multi-stage build, got %d stage(s)", len(df.Stages))
			}
			build, final := df.Stages[0], df.Stages[len(df.Stages)-1]
			if !strings.HasPrefix(build.BaseName, "golang:") {
				t.Errorf("build stage starts FROM %s, want golang", build.BaseName)
			}
			if final.BaseName != "scratch" && !distrolessNonroot.MatchString(final.BaseName) {
				t.Errorf("final stage FROM %s: want scratch or gcr.io/distroless/static:nonroot pinned by digest", final.BaseName)
			}

			// Build stage: the service's module on its own (GOWORK=off),
			// its go.mod/go.sum and the internal module's copied before
			// `go mod download`, sources after it, nothing else.
			copied := map[string]int{} // source -> command index
			downloadAt, buildAt, svcSrcAt := -1, -1, -1
			stageEnv := map[string]string{}
			workdir, downloadDir, buildDir := "/", "", ""
			var build0 GoCommand
			for i, cmd := range build.Commands {
				switch c := cmd.(type) {
				case *instructions.CopyCommand:
					for _, src := range c.SourcePaths {
						copied[path.Clean(src)] = i
						if path.Clean(src) == svc {
							svcSrcAt = i
						}
					}
				case *instructions.WorkdirCommand:
					workdir = path.Join(workdir, c.Path)
					if path.IsAbs(c.Path) {
						workdir = path.Clean(c.Path)
					}
				case *instructions.EnvCommand:
					for _, kv := range c.Env {
						stageEnv[kv.Key] = kv.Value
					}
				case *instructions.RunCommand:
					gos, err := GoCommands(strings.Join(c.CmdLine, " "))
					if err != nil {
						t.Errorf("RUN %v: %v", c.CmdLine, err)
					}
					for _, g := range gos {
						switch {
						case g.Verb == "mod" && len(g.Args) > 0 && g.Args[0] == "download":
							downloadAt, downloadDir = i, workdir
						case g.Verb == "build":
							buildAt, build0, buildDir = i, g, workdir
						}
					}
				}
			}
			if downloadAt < 0 || buildAt < 0 {
				t.Fatalf("want RUN go mod download and RUN go build in the first stage")
			}
			if stageEnv["GOWORK"] != "off" {
				t.Errorf("GOWORK=%q: the service module must build on its own (GOWORK=off), without the development tools' module", stageEnv["GOWORK"])
			}
			for _, n := range []string{svc + "/go.mod", svc + "/go.sum", "internal/go.mod", "internal/go.sum"} {
				at, ok := copied[n]
				if !ok {
					t.Errorf("%s is not copied", n)
				} else if at > downloadAt {
					t.Errorf("%s is copied after go mod download: the dependency layer would not cache", n)
				}
			}
			for src := range copied {
				if top, _, _ := strings.Cut(src, "/"); top != svc && top != "internal" {
					t.Errorf("COPY %s: only the service and the internal module belong in the image", src)
				}
			}
			if svcSrcAt < 0 || svcSrcAt < downloadAt {
				t.Errorf("the %s sources must be copied after go mod download", svc)
			}
			if _, ok := copied["internal"]; !ok {
				t.Errorf("the internal module's sources are not copied")
			}
			if path.Base(downloadDir) != svc || path.Base(buildDir) != svc {
				t.Errorf("go mod download runs in %s and go build in %s, want the %s module's directory", downloadDir, buildDir, svc)
			}

			// go build: the Makefile's flags, CGO off, ./svc.
			cgo := build0.Env["CGO_ENABLED"]
			if cgo == "" {
				cgo = stageEnv["CGO_ENABLED"]
			}
			if cgo != "0" {
				t.Errorf("go build runs with CGO_ENABLED=%q, want 0", cgo)
			}
			if !ContainsSeq(build0.Args, flags) {
				t.Errorf("go build %v does not use the Makefile's BUILD_FLAGS %q", build0.Args, flags)
			}
			if len(build0.Args) == 0 || build0.Args[len(build0.Args)-1] != "." {
				t.Errorf("go build must build the module's main package (.), got %v", build0.Args)
			}
			out := ""
			for i, a := range build0.Args {
				if a == "-o" && i+1 < len(build0.Args) {
					out = build0.Args[i+1]
				}
			}

			// Final stage: the binary, a non-root user, the service's port.
			var user, entry string
			gotBinary := false
			var exposed []string
			for _, cmd := range final.Commands {
				switch c := cmd.(type) {
				case *instructions.CopyCommand:
					for _, src := range c.SourcePaths {
						gotBinary = gotBinary || (c.From == build.Name && src == out)
					}
				case *instructions.UserCommand:
					user = c.User
				case *instructions.EntrypointCommand:
					if c.PrependShell {
						t.Errorf("ENTRYPOINT must be exec form (no shell in the image)")
					}
					entry = strings.Join(c.CmdLine, " ")
				case *instructions.ExposeCommand:
					exposed = append(exposed, c.Ports...)
				}
			}
			if !gotBinary {
				t.Errorf("final stage does not copy %s from stage %q", out, build.Name)
			}
			uid, _, _ := strings.Cut(user, ":")
			if n, err := strconv.Atoi(uid); err != nil || n == 0 {
				t.Errorf("USER %q: want a numeric non-root uid (runAsNonRoot needs a number)", user)
			}
			if !strings.HasSuffix(entry, "/"+svc) {
				t.Errorf("ENTRYPOINT %q does not run %s", entry, svc)
			}
			cfg, err := config.Load(svc, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			port := cfg.HTTPAddr[strings.LastIndexByte(cfg.HTTPAddr, ':')+1:]
			if len(exposed) != 1 || exposed[0] != port {
				t.Errorf("EXPOSE %v, want the service's default port %s", exposed, port)
			}
		})
	}
}

func TestShellWords(t *testing.T) {
	got, err := ShellWords(`CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o '/out/x y' ./x && echo a\ b`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/x y", "./x", "&&", "echo", "a b"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The image's build context holds the product only: the development tools,
// the workspace and the test helpers stay out of it.
func TestDockerignoreKeepsToolsOut(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		ignored[path.Clean(strings.TrimSpace(l))] = true
	}
	for _, p := range []string{"tools", "go.work", "**/*_test.go"} {
		if !ignored[p] {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	// The internal packages the services build from must be in the
	// context; every other one (test helpers) must not.
	used := servicePackages(t, root)
	dirs, err := os.ReadDir(filepath.Join(root, "internal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		p := "internal/" + d.Name()
		switch {
		case used[p] && ignored[p]:
			t.Errorf(".dockerignore excludes %s, which the services import", p)
		case !used[p] && !ignored[p]:
			t.Errorf(".dockerignore does not exclude %s, which no service imports (a test helper?)", p)
		}
	}
}

// servicePackages returns the repository's packages ("internal/x") that
// the services' non-test code imports, directly or through one another.
func servicePackages(t *testing.T, root string) map[string]bool {
	t.Helper()
	const module = "github.com/pulse-iot/pulse/"
	used := map[string]bool{}
	queue := []string{"ingest", "analyzer", "api"}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(p, module); ok && !used[rel] {
					used[rel] = true
					queue = append(queue, rel)
				}
			}
		}
	}
	return used
}
