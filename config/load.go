package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	Line, Column int    // 0 when the problem has no place in the file
	Path         string // key path such as clients[0].secret; "" for syntax errors
	Message      string
	Hint         string // what to do about it
}

func (p Problem) format(file string) string {
	var b strings.Builder
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString("\n\thint: " + p.Hint)
	}
	return b.String()
}

// Error lists every problem found in one file; nothing may start with it.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.format(e.File)
	}
	return strings.Join(lines, "\n")
}

// Load reads the file at path, validates it and resolves its secret
// references. Every problem is reported at once in an *Error naming the
// file and line; non-fatal findings are in Config.Warnings.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problems: []Problem{{Message: err.Error(),
			Hint: "check the path given to --config"}}}
	}
	c, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if probs := c.resolve(); len(probs) > 0 {
		return nil, c.placed(probs)
	}
	return c, nil
}

// Parse decodes and validates data as the file called name, without
// reading the environment or other files: secrets stay unresolved.
func Parse(name string, data []byte) (*Config, error) {
	fail := func(p ...Problem) (*Config, error) { return nil, &Error{File: name, Problems: p} }
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(Problem{Message: "the file is empty", Hint: "start from the example in the README, or one in examples/"})
	}

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(Problem{Message: "the file is empty", Hint: "start from the example in the README, or one in examples/"})
		}
		return fail(syntaxProblem(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fail(Problem{Line: extra.Line, Message: "a second YAML document (---) follows the first",
			Hint: "keep the whole configuration in one document"})
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return fail(Problem{Line: root.Line, Message: "the top level must be a mapping of sections (server:, clients:, ldap:, …)",
			Hint: "start from the example in the README, or one in examples/"})
	}

	c := Default()
	c.File = name
	c.pos = positions{}
	// Decode before walk expands aliases: the decoder refuses an anchor
	// that contains itself and excessive aliasing, which would send walk
	// into endless recursion or exponential work.
	err := decodeStrict(data, &c)
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		return fail(syntaxProblem(err))
	}
	var probs []Problem
	walk(root.Content[0], reflect.TypeOf(c), "", c.pos, &probs)

	typed := map[int]bool{} // lines with a type error
	if te != nil {
		for _, s := range te.Errors {
			if p, ok := typeProblem(s, c.pos); ok {
				probs = append(probs, p)
				typed[p.Line] = true
			}
		}
	}
	// Validate even after type errors, so that one run reports everything;
	// skip what a type error has already said about the same line.
	c.applyDefaults()
	for _, p := range c.validate() {
		if line, _ := c.pos.find(p.Path); !typed[line] || !c.pos.has(p.Path) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		return nil, c.placed(probs)
	}
	return &c, nil
}

// decodeStrict decodes data into c, refusing unknown keys. yaml.v3 panics
// on some malformed documents (a mapping used as a key beside a merge
// key); that becomes an error too.
func decodeStrict(data []byte, c *Config) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("yaml: the document cannot be decoded (%v)", v)
		}
	}()
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	return strict.Decode(c)
}

// placed fills in the line of each problem from its key path.
func (c *Config) placed(probs []Problem) *Error {
	for i := range probs {
		if probs[i].Line == 0 && probs[i].Path != "" {
			probs[i].Line, probs[i].Column = c.pos.find(probs[i].Path)
		}
	}
	sortProblems(probs)
	return &Error{File: c.File, Problems: probs}
}

func sortProblems(p []Problem) {
	sort.SliceStable(p, func(i, j int) bool { return p[i].Line < p[j].Line })
}

// positions maps a key path to the place of its value in the file.
type positions map[string]pos

type pos struct{ line, col int }

func (ps positions) has(path string) bool { _, ok := ps[path]; return ok }

// find returns the place of path or, when the key is absent, of its
// nearest ancestor that is present.
func (ps positions) find(path string) (line, col int) {
	for path != "" {
		if p, ok := ps[path]; ok {
			return p.line, p.col
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0, 0
}

// pathAt returns the key path whose value sits on line, for type errors
// that yaml reports by line only.
func (ps positions) pathAt(line int) string {
	best := ""
	for p, at := range ps {
		if at.line == line && len(p) > len(best) {
			best = p
		}
	}
	return best
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// walk records the position of every key and reports keys the schema does
// not know, with the keys that would be valid there. yaml.v3's own strict
// mode does the same without the hint, and is lost inside custom
// unmarshalers; this walk covers the whole tree.
func walk(n *yaml.Node, t reflect.Type, path string, ps positions, probs *[]Problem) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		ps[path] = pos{n.Line, n.Column}
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the wrong type
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: its mapping belongs here
				walk(v, t, path, ps, probs)
				continue
			}
			f, ok := fields[k.Value]
			if !ok {
				*probs = append(*probs, Problem{Line: k.Line, Column: k.Column, Path: join(path, k.Value),
					Message: fmt.Sprintf("unknown key %q", k.Value), Hint: keyHint(k.Value, fields)})
				continue
			}
			walk(v, f, join(path, k.Value), ps, probs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), ps, probs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, e := range n.Content {
			walk(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", ps, probs)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps each YAML key of struct type t to its field type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

func keyHint(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q? Keys here: %s", best, strings.Join(names, ", "))
	}
	return "keys here: " + strings.Join(names, ", ")
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var (
	lineRE      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unmarshalRE = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Message: "YAML syntax: " + m[2],
			Hint: "check indentation (spaces, not tabs) and quoting from this line to the next few"}
	}
	return Problem{Message: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: "),
		Hint: "check indentation (spaces, not tabs) and quoting"}
}

// typeProblem turns one of yaml.v3's type error strings into a Problem
// with a hint. Unknown keys are skipped: walk has reported them.
func typeProblem(s string, ps positions) (Problem, bool) {
	m := lineRE.FindStringSubmatch(s)
	if m == nil {
		return Problem{Message: s}, true
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	if strings.HasPrefix(msg, "field ") && strings.Contains(msg, " not found in type ") {
		return Problem{}, false
	}
	p := Problem{Line: line, Path: ps.pathAt(line), Message: msg}
	if text, hint, ok := strings.Cut(msg, hintSep); ok {
		p.Message, p.Hint = text, hint
		return p, true
	}
	if u := unmarshalRE.FindStringSubmatch(msg); u != nil {
		tag, val, into := u[1], u[2], u[3]
		p.Message, p.Hint = describeType(tag, val, into)
	}
	return p, true
}

func describeType(tag, val, into string) (msg, hint string) {
	found := map[string]string{"!!map": "a mapping", "!!seq": "a list", "!!str": "text", "!!int": "a number",
		"!!bool": "true/false", "!!float": "a number", "!!null": "nothing"}[tag]
	if found == "" {
		found = tag
	}
	if val != "" {
		found = fmt.Sprintf("%q", val)
	}
	switch {
	case into == "time.Duration":
		if tag == "!!int" {
			return fmt.Sprintf("%s is not a duration: it has no unit", found), fmt.Sprintf("add a unit, such as %ss or %sm", val, val)
		}
		return fmt.Sprintf("%s is not a duration", found), "write a number with a unit, such as 30s, 5m or 2h"
	case into == "bool":
		return fmt.Sprintf("%s is not true or false", found), "write true or false"
	case strings.HasPrefix(into, "int") || strings.HasPrefix(into, "uint"):
		return fmt.Sprintf("%s is not a whole number", found), "write a number such as 5"
	case strings.HasPrefix(into, "[]"):
		return fmt.Sprintf("expected a list, found %s", found), "write a list, such as [a, b], or one item per line starting with -"
	case strings.HasPrefix(into, "map["):
		return fmt.Sprintf("expected a mapping, found %s", found), "write key: value pairs"
	case into == "string":
		return fmt.Sprintf("expected a single value, found %s", found), "write one value; quote it if it contains : or #"
	}
	return fmt.Sprintf("expected %s, found %s", strings.TrimPrefix(into, "config."), found), "see the configuration reference, docs/configuration.md"
}
