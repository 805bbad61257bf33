package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const makefile = "../Makefile"

// imageSpec says what one Dockerfile must build and ship.
type imageSpec struct {
	file     string
	packages []string // exactly what its go build builds, in order
	binary   string   // the entrypoint, whose healthcheck subcommand the image runs
	// forbidden are source folders whose code must not enter the build.
	forbidden []string
}

var images = []imageSpec{
	// The API links no worker or model code; the CLI links worker code, so
	// it is not in the API image either.
	{file: "api.Dockerfile", packages: []string{"./cmd/hokusai-api"}, binary: "hokusai-api", forbidden: []string{"worker", "models"}},
	// The worker image carries the CLI for `models apply` and `keys create`.
	{file: "worker.Dockerfile", packages: []string{"./cmd/hokusai-worker", "./cmd/hokusai"}, binary: "hokusai-worker", forbidden: []string{"models"}},
}

// finalBases are the runtime bases allowed: static, no shell, no package manager.
var finalBases = []string{"gcr.io/distroless/static-debian12:nonroot", "scratch"}

// instruction is one Dockerfile instruction with continuations joined.
type instruction struct {
	cmd   string // upper case: FROM, RUN, COPY, ...
	args  string
	stage int // index of the FROM it belongs to
}

func parseDockerfile(src []byte) []instruction {
	var out []instruction
	stage := -1
	for _, line := range logicalLines(src, true) {
		cmd, args, _ := strings.Cut(line, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	return out
}

// logicalLines joins backslash continuations and drops blank lines (and,
// for Dockerfiles, comment lines).
func logicalLines(src []byte, dropComments bool) []string {
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if dropComments && strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if body, cont := strings.CutSuffix(line, "\\"); cont {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		if s := cur.String(); strings.TrimSpace(s) != "" {
			lines = append(lines, s)
		}
		cur.Reset()
	}
	return lines
}

// shellWords splits a command line as a POSIX shell would for the simple
// forms used in build recipes: blanks, single and double quotes, backslashes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case ch == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// goBuild is one `go build` invocation: environment set on it, flags by
// name ("-trimpath" -> "", "-ldflags" -> "-s -w"; -o excluded) and packages.
type goBuild struct {
	env      map[string]string
	flags    map[string]string
	packages []string
}

// goBuildValueFlags are the go build flags that take a separate value.
var goBuildValueFlags = map[string]bool{"-o": true, "-ldflags": true, "-gcflags": true, "-asmflags": true, "-tags": true, "-mod": true, "-p": true, "-pgo": true}

// healthcheckWord finds the subcommand in shell or exec (JSON) form.
var healthcheckWord = regexp.MustCompile(`(^|[\s"\[,])healthcheck($|[\s",\]])`)

var envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// findGoBuilds returns the go build commands in a shell command line; env
// holds variables already set around it (Dockerfile ENV).
func findGoBuilds(line string, env map[string]string) ([]goBuild, error) {
	words, err := shellWords(line)
	if err != nil {
		return nil, err
	}
	var builds []goBuild
	for cmd := range splitCommands(words) {
		b := goBuild{env: maps.Clone(env), flags: map[string]string{}}
		if b.env == nil {
			b.env = map[string]string{}
		}
		for len(cmd) > 0 && (strings.HasPrefix(cmd[0], "--") || envAssignment.MatchString(cmd[0])) {
			if name, value, ok := strings.Cut(cmd[0], "="); ok && !strings.HasPrefix(name, "-") {
				b.env[name] = value
			}
			cmd = cmd[1:]
		}
		if len(cmd) < 2 || (cmd[0] != "go" && !strings.HasSuffix(cmd[0], "/go")) || cmd[1] != "build" {
			continue
		}
		for i := 2; i < len(cmd); i++ {
			w := cmd[i]
			if !strings.HasPrefix(w, "-") {
				b.packages = append(b.packages, w)
				continue
			}
			name, value, hasValue := strings.Cut(strings.Replace(w, "--", "-", 1), "=")
			if !hasValue && goBuildValueFlags[name] && i+1 < len(cmd) {
				i++
				value = cmd[i]
			}
			if name != "-o" {
				b.flags[name] = value
			}
		}
		builds = append(builds, b)
	}
	return builds, nil
}

// splitCommands yields the simple commands of a word list joined by && or ;.
func splitCommands(words []string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		start := 0
		for i := 0; i <= len(words); i++ {
			if i == len(words) || words[i] == "&&" || words[i] == ";" {
				if !yield(words[start:i]) {
					return
				}
				start = i + 1
			}
		}
	}
}

var makeAssignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?=|:=|::=|=)\s*(.*)$`)
var makeReference = regexp.MustCompile(`\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]`)

// makeBuild returns the go build of the Makefile's build recipe, with make
// variables expanded.
func makeBuild(src []byte) (goBuild, error) {
	vars := map[string]string{}
	var recipe []string
	inBuild := false
	for _, line := range logicalLines(src, false) {
		if strings.HasPrefix(line, "\t") {
			if inBuild {
				recipe = append(recipe, strings.TrimLeft(strings.TrimSpace(line), "@-+"))
			}
			continue
		}
		inBuild = strings.HasPrefix(line, "build:")
		if m := makeAssignment.FindStringSubmatch(line); m != nil {
			vars[m[1]] = strings.TrimSpace(m[2])
		}
	}
	var builds []goBuild
	for _, line := range recipe {
		for range 8 { // variables may refer to variables
			line = makeReference.ReplaceAllStringFunc(line, func(ref string) string { return vars[makeReference.FindStringSubmatch(ref)[1]] })
		}
		b, err := findGoBuilds(strings.ReplaceAll(line, "$$", "$"), nil)
		if err != nil {
			return goBuild{}, err
		}
		builds = append(builds, b...)
	}
	if len(builds) != 1 {
		return goBuild{}, fmt.Errorf("Makefile build recipe has %d go build commands, want 1: %q", len(builds), recipe)
	}
	return builds[0], nil
}

// checkImage returns every way a Dockerfile breaks its spec or builds
// differently from `make build`.
func checkImage(spec imageSpec, src []byte, mk goBuild) []string {
	var c findings
	instrs := parseDockerfile(src)
	if len(instrs) == 0 || instrs[0].cmd != "FROM" {
		return []string{spec.file + " does not start with FROM"}
	}
	final := instrs[len(instrs)-1].stage
	stageEnv := map[int]map[string]string{}
	var builds []goBuild
	var user string
	healthcheck := false
	for _, in := range instrs {
		words, err := shellWords(in.args)
		if err != nil || len(words) == 0 {
			c.add("%s: unreadable %s %q: %v", spec.file, in.cmd, in.args, err)
			continue
		}
		for _, w := range words {
			if namesHFToken(w) {
				c.add("%s %s names the HF token (%q); images never carry it", spec.file, in.cmd, w)
			}
		}
		switch in.cmd {
		case "FROM":
			base, _, _ := strings.Cut(words[0], "@")
			if in.stage == 0 && !strings.HasPrefix(base, "golang:1.26") {
				c.add("%s builds on %q; want golang:1.26", spec.file, base)
			}
			if in.stage == final && !slices.Contains(finalBases, base) {
				c.add("%s runs on %q; want one of %v", spec.file, base, finalBases)
			}
		case "ENV":
			if stageEnv[in.stage] == nil {
				stageEnv[in.stage] = map[string]string{}
			}
			for _, w := range words {
				if name, value, ok := strings.Cut(w, "="); ok {
					stageEnv[in.stage][name] = value
				}
			}
		case "RUN":
			b, err := findGoBuilds(in.args, stageEnv[in.stage])
			if err != nil {
				c.add("%s: %v", spec.file, err)
			}
			builds = append(builds, b...)
		case "COPY", "ADD":
			checkCopy(spec, words, &c)
		case "USER":
			if in.stage == final {
				user, _, _ = strings.Cut(words[0], ":")
			}
		case "HEALTHCHECK":
			healthcheck = in.stage == final && strings.Contains(in.args, spec.binary) && healthcheckWord.MatchString(in.args)
		}
	}
	if user == "" || user == "root" || user == "0" {
		c.add("%s final stage runs as %q; set a non-root USER", spec.file, user)
	}
	if !healthcheck {
		c.add("%s final stage has no HEALTHCHECK running `%s healthcheck`", spec.file, spec.binary)
	}
	if len(builds) != 1 {
		c.add("%s has %d go build commands, want 1", spec.file, len(builds))
		return c.list
	}
	b := builds[0]
	if b.env["CGO_ENABLED"] != "0" || mk.env["CGO_ENABLED"] != "0" {
		c.add("%s go build has CGO_ENABLED=%q and make build CGO_ENABLED=%q; both must be 0 for static binaries", spec.file, b.env["CGO_ENABLED"], mk.env["CGO_ENABLED"])
	}
	if !maps.Equal(b.flags, mk.flags) {
		c.add("%s go build flags %v differ from make build's %v", spec.file, b.flags, mk.flags)
	}
	if !slices.Equal(b.packages, spec.packages) {
		c.add("%s builds %v; want exactly %v", spec.file, b.packages, spec.packages)
	}
	for _, p := range b.packages {
		if !slices.Contains(mk.packages, p) {
			c.add("%s builds %s, which make build does not build", spec.file, p)
		}
	}
	return c.list
}

// checkCopy: copies from the build context name folders, never the whole
// context (which holds secrets/) and never a forbidden folder.
func checkCopy(spec imageSpec, words []string, c *findings) {
	var sources []string
	for _, w := range words {
		if strings.HasPrefix(w, "--from=") {
			return // from another stage, not the build context
		}
		if !strings.HasPrefix(w, "--") {
			sources = append(sources, w)
		}
	}
	if len(sources) < 2 {
		return
	}
	for _, src := range sources[:len(sources)-1] {
		dir := strings.Trim(strings.TrimPrefix(src, "./"), "/")
		first, _, _ := strings.Cut(dir, "/")
		switch {
		case dir == "." || dir == "" || strings.ContainsAny(dir, "*?"):
			c.add("%s copies %q, the whole build context (secrets/ included); copy named folders", spec.file, src)
		case strings.Contains(dir, "secret"):
			c.add("%s copies %q into the image", spec.file, src)
		case slices.Contains(spec.forbidden, first):
			c.add("%s copies %q; the image must not contain %s code", spec.file, src, first)
		}
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func makefileBuild(t *testing.T, src []byte) goBuild {
	t.Helper()
	mk, err := makeBuild(src)
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func TestImagesBuildWhatMakeBuilds(t *testing.T) {
	t.Parallel()
	mk := makefileBuild(t, readFile(t, makefile))
	for _, spec := range images {
		for _, f := range checkImage(spec, readFile(t, spec.file), mk) {
			t.Error(f)
		}
	}
}

func TestImageChecksCatchRegressions(t *testing.T) {
	t.Parallel()
	api, worker := images[0], images[1]
	cases := []struct {
		name      string
		spec      imageSpec
		old, new  string // replaced once in the Dockerfile
		mkOld     string // replaced once in the Makefile, when set
		mkNew     string
		wantFound string
	}{
		{name: "ldflags drift", spec: api, old: `-ldflags="-s -w"`, new: `-ldflags="-s"`, wantFound: "flags map[-ldflags:-s -trimpath:] differ"},
		{name: "Makefile drops -trimpath", spec: worker, mkOld: "-trimpath ", wantFound: "differ from make build's map[-ldflags:-s -w]"},
		{name: "cgo left on", spec: api, old: "CGO_ENABLED=0 go build", new: "go build", wantFound: `CGO_ENABLED=""`},
		{name: "API image builds the CLI", spec: api, old: "-o /out/ ./cmd/hokusai-api", new: "-o /out/ ./cmd/hokusai-api ./cmd/hokusai", wantFound: "want exactly [./cmd/hokusai-api]"},
		{name: "image builds something make does not", spec: worker, old: "./cmd/hokusai-worker ./cmd/hokusai", new: "./cmd/hokusai-worker ./cmd/hokusai ./tools/x", wantFound: "builds ./tools/x, which make build does not build"},
		{name: "API image copies worker code", spec: api, old: "COPY jobs/ jobs/\n", new: "COPY jobs/ jobs/\nCOPY worker/ worker/\n", wantFound: `copies "worker/"; the image must not contain worker code`},
		{name: "API image copies the model", spec: api, old: "COPY jobs/ jobs/\n", new: "COPY jobs/ jobs/\nCOPY models/sales-lead-scoring /models\n", wantFound: "must not contain models code"},
		{name: "whole context copied", spec: worker, old: "COPY worker/ worker/\n", new: "COPY . .\n", wantFound: "the whole build context"},
		{name: "token baked into the worker image", spec: worker, old: "ENV HF_HOME", new: "ENV HF_TOKEN=hf_x HF_HOME", wantFound: `ENV names the HF token ("HF_TOKEN=hf_x")`},
		{name: "token build argument", spec: worker, old: "WORKDIR /src\n", new: "WORKDIR /src\nARG HUGGINGFACE_API_KEY\n", wantFound: "ARG names the HF token"},
		{name: "runs as root", spec: api, old: "USER nonroot:nonroot", new: "USER root", wantFound: `final stage runs as "root"`},
		{name: "no USER", spec: worker, old: "USER nonroot:nonroot\n", new: "", wantFound: `final stage runs as ""`},
		{name: "no HEALTHCHECK", spec: worker, old: "HEALTHCHECK", new: "LABEL x=", wantFound: "no HEALTHCHECK running `hokusai-worker healthcheck`"},
		{name: "fat runtime base", spec: api, old: "FROM gcr.io/distroless/static-debian12:nonroot", new: "FROM debian:12", wantFound: `runs on "debian:12"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := mustReplace(t, readFile(t, tc.spec.file), tc.old, tc.new)
			mk := makefileBuild(t, mustReplace(t, readFile(t, makefile), tc.mkOld, tc.mkNew))
			got := checkImage(tc.spec, src, mk)
			for _, f := range got {
				if strings.Contains(f, tc.wantFound) {
					return
				}
			}
			t.Errorf("no finding contains %q; findings:\n%s", tc.wantFound, strings.Join(got, "\n"))
		})
	}
}

// mustReplace replaces old, which must occur exactly once; an empty old
// leaves src unchanged.
func mustReplace(t *testing.T, src []byte, old, new string) []byte {
	t.Helper()
	if old == "" {
		return src
	}
	if n := bytes.Count(src, []byte(old)); n != 1 {
		t.Fatalf("mutation: %q occurs %d times, want 1", old, n)
	}
	return bytes.Replace(src, []byte(old), []byte(new), 1)
}

// TestImagesCopyEveryImportedFolder: each Dockerfile copies every top-level
// folder of this module that its binaries import (go list -deps), so a new
// package breaks this test rather than the image build.
func TestImagesCopyEveryImportedFolder(t *testing.T) {
	t.Parallel()
	for _, spec := range images {
		args := append([]string{"list", "-e", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}} {{.Module.Path}}{{end}}{{end}}"}, spec.packages...)
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		copied := map[string]bool{}
		for _, in := range parseDockerfile(readFile(t, spec.file)) {
			if in.cmd == "COPY" && !strings.Contains(in.args, "--from=") {
				words, _ := shellWords(in.args)
				for _, w := range words[:len(words)-1] {
					if !strings.HasPrefix(w, "--") {
						copied[strings.Trim(strings.TrimPrefix(w, "./"), "/")] = true
					}
				}
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			pkg, module, _ := strings.Cut(line, " ")
			rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
			if top, _, _ := strings.Cut(rel, "/"); !copied[top] {
				t.Errorf("%s does not COPY %s/, which %s imports", spec.file, top, pkg)
			}
		}
	}
}
