package api

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// docsHTML is the page's template: plain HTML and CSS, nothing loaded from
// outside the binary.
//
//go:embed docs.html
var docsHTML string

// The page, as the template sees it. Every template.HTML value is built by
// this file from escaped text.
type docPage struct {
	Title, Summary, Version string
	Description             template.HTML
	Groups                  []docGroup
	Problems                []docProblem
	Schemas                 []docSchema
}

type docGroup struct {
	Name        string
	Description template.HTML
	Routes      []docRoute
}

type docRoute struct {
	Anchor, Method, Path, Summary, Auth string
	Description                         template.HTML
	Params                              []docParam
	Body                                *docBody
	Responses                           []docResponse
}

type docParam struct {
	Name, In    string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

type docBody struct {
	ContentType string
	Required    bool
	Type        template.HTML
	Fields      []docField
}

type docField struct {
	Name        string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

type docResponse struct {
	Status, ContentType string
	Description         template.HTML
	Type                template.HTML
	Headers             []string
}

type docProblem struct {
	Code, Status string
	Text         template.HTML
}

type docSchema struct {
	Name        string
	Description template.HTML
	Type        template.HTML
	Fields      []docField
}

// docMethods are the operations a path item may hold.
var docMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// docAuth names each security scheme as a reader needs it.
var docAuth = map[string]string{
	"partnerKey":  "Authorization: Bearer <partner API key>",
	"tenantToken": "Authorization: Bearer <tenant app JWT>",
}

// renderDocs renders the OpenAPI document as one HTML page: every route
// with its method, summary, credentials, parameters, request body and
// answers; the problem codes, each with an id="problem-<code>" anchor (the
// problem documents' type links there); and the schemas.
func renderDocs(doc []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("render docs: %w", err)
	}
	if len(root.Content) != 1 {
		return nil, fmt.Errorf("render docs: empty document")
	}
	d := &docRenderer{root: root.Content[0], codes: map[string]bool{}}
	for _, pc := range pairs(get(d.root, "info", "x-problem-codes")) {
		d.codes[pc[0].Value] = true
	}
	page, err := d.page()
	if err != nil {
		return nil, fmt.Errorf("render docs: %w", err)
	}
	tmpl, err := template.New("docs").Parse(docsHTML)
	if err != nil {
		return nil, fmt.Errorf("render docs: %w", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, page); err != nil {
		return nil, fmt.Errorf("render docs: %w", err)
	}
	return out.Bytes(), nil
}

type docRenderer struct {
	root  *yaml.Node
	codes map[string]bool // the problem codes, to link them where named
}

// get returns the value of key in mapping node n, or nil.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, key := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

func str(n *yaml.Node, keys ...string) string {
	if v := get(n, keys...); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// pairs returns the keys and values of mapping node n in document order.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}

func scalars(n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}
	}
	var out []string
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode {
			out = append(out, c.Value)
		}
	}
	return out
}

// resolve follows a local $ref ("#/components/...").
func (d *docRenderer) resolve(n *yaml.Node) *yaml.Node {
	for range 8 {
		ref := str(n, "$ref")
		if ref == "" {
			return n
		}
		n = get(d.root, strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
	}
	return n
}

func (d *docRenderer) page() (docPage, error) {
	p := docPage{
		Title:       str(d.root, "info", "title"),
		Summary:     str(d.root, "info", "summary"),
		Version:     str(d.root, "info", "version"),
		Description: d.prose(str(d.root, "info", "description")),
	}
	groups := map[string]*docGroup{}
	var order []string
	for _, t := range pairsOfSeq(get(d.root, "tags")) {
		name := str(t, "name")
		groups[name] = &docGroup{Name: name, Description: d.prose(str(t, "description"))}
		order = append(order, name)
	}
	for _, pp := range pairs(get(d.root, "paths")) {
		path, item := pp[0].Value, pp[1]
		for _, mp := range pairs(item) {
			m, op := mp[0].Value, mp[1]
			if !slices.Contains(docMethods, m) {
				continue // path-level parameters
			}
			rt, err := d.route(path, m, item, op)
			if err != nil {
				return p, err
			}
			tag := "other"
			if tags := scalars(get(op, "tags")); len(tags) > 0 {
				tag = tags[0]
			}
			g, ok := groups[tag]
			if !ok {
				g = &docGroup{Name: tag}
				groups[tag] = g
				order = append(order, tag)
			}
			g.Routes = append(g.Routes, rt)
		}
	}
	for _, name := range order {
		if g := groups[name]; len(g.Routes) > 0 {
			p.Groups = append(p.Groups, *g)
		}
	}
	for _, pc := range pairs(get(d.root, "info", "x-problem-codes")) {
		status, text, ok := strings.Cut(pc[1].Value, ": ")
		if !ok {
			return p, fmt.Errorf("problem code %s: description must start with its status", pc[0].Value)
		}
		p.Problems = append(p.Problems, docProblem{Code: pc[0].Value, Status: status, Text: d.prose(text)})
	}
	for _, sp := range pairs(get(d.root, "components", "schemas")) {
		s := sp[1]
		p.Schemas = append(p.Schemas, docSchema{
			Name: sp[0].Value, Description: d.prose(str(s, "description")),
			Type: d.shallowType(s), Fields: d.fields(s, ""),
		})
	}
	return p, nil
}

func pairsOfSeq(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func (d *docRenderer) route(path, method string, item, op *yaml.Node) (docRoute, error) {
	rt := docRoute{
		Anchor:      "op-" + str(op, "operationId"),
		Method:      strings.ToUpper(method),
		Path:        path,
		Summary:     str(op, "summary"),
		Description: d.prose(str(op, "description")),
		Auth:        d.auth(op),
	}
	if rt.Anchor == "op-" {
		return rt, fmt.Errorf("%s %s has no operationId", rt.Method, path)
	}
	for _, list := range []*yaml.Node{get(item, "parameters"), get(op, "parameters")} {
		for _, prm := range pairsOfSeq(list) {
			prm = d.resolve(prm)
			rt.Params = append(rt.Params, docParam{
				Name: str(prm, "name"), In: str(prm, "in"), Required: str(prm, "required") == "true",
				Type: d.typeOf(get(prm, "schema")), Description: d.prose(str(prm, "description")),
			})
		}
	}
	if rb := d.resolve(get(op, "requestBody")); rb != nil {
		for _, ct := range pairs(get(rb, "content")) {
			schema := get(ct[1], "schema")
			rt.Body = &docBody{
				ContentType: ct[0].Value, Required: str(rb, "required") == "true",
				Type: d.shallowType(schema), Fields: d.fields(d.resolve(schema), ""),
			}
			break
		}
	}
	resp := pairs(get(op, "responses"))
	slices.SortStableFunc(resp, func(a, b [2]*yaml.Node) int { return strings.Compare(a[0].Value, b[0].Value) })
	for _, rp := range resp {
		r := d.resolve(rp[1])
		// A reference's own description (OpenAPI 3.1) names the problem
		// codes this route answers with that status.
		desc := str(rp[1], "description")
		if desc == "" {
			desc = str(r, "description")
		}
		dr := docResponse{Status: rp[0].Value, Description: d.prose(desc)}
		for _, ct := range pairs(get(r, "content")) {
			dr.ContentType = ct[0].Value
			dr.Type = d.typeOf(get(ct[1], "schema"))
			break
		}
		for _, h := range pairs(get(r, "headers")) {
			name := h[0].Value
			if str(d.resolve(h[1]), "required") == "true" {
				name += " (always)"
			}
			dr.Headers = append(dr.Headers, name)
		}
		rt.Responses = append(rt.Responses, dr)
	}
	return rt, nil
}

// auth names the credentials an operation needs (its own security, else
// the document's).
func (d *docRenderer) auth(op *yaml.Node) string {
	sec := get(op, "security")
	if sec == nil {
		sec = get(d.root, "security")
	}
	var names []string
	for _, req := range pairsOfSeq(sec) {
		for _, kv := range pairs(req) {
			if a, ok := docAuth[kv[0].Value]; ok {
				names = append(names, a)
			} else {
				names = append(names, kv[0].Value)
			}
		}
	}
	if len(names) == 0 {
		return "no authentication"
	}
	return strings.Join(names, " or ")
}

// typeOf summarizes a schema in one line: its type, with links to named
// schemas, and its constraints.
func (d *docRenderer) typeOf(s *yaml.Node) template.HTML { return d.typeAt(s, 0) }

// shallowType is typeOf without the members of an object, for a schema whose
// members are listed in a table.
func (d *docRenderer) shallowType(s *yaml.Node) template.HTML { return d.typeAt(s, 2) }

func (d *docRenderer) typeAt(s *yaml.Node, depth int) template.HTML {
	if s == nil {
		return ""
	}
	if ref := str(s, "$ref"); ref != "" {
		name := ref[strings.LastIndex(ref, "/")+1:]
		return template.HTML(`<a href="#schema-` + template.HTMLEscapeString(name) + `"><code>` + template.HTMLEscapeString(name) + `</code></a>`)
	}
	var parts []string
	for _, key := range []string{"oneOf", "anyOf"} {
		if alts := pairsOfSeq(get(s, key)); alts != nil {
			var ts []string
			for _, a := range alts {
				ts = append(ts, string(d.typeAt(a, depth)))
			}
			parts = append(parts, strings.Join(ts, " | "))
		}
	}
	if all := pairsOfSeq(get(s, "allOf")); all != nil {
		var ts []string
		for _, a := range all {
			ts = append(ts, string(d.typeAt(a, depth)))
		}
		if get(s, "properties") != nil {
			ts = append(ts, "the members below")
		}
		if len(ts) == 1 {
			parts = append(parts, ts[0])
		} else {
			parts = append(parts, "all of "+strings.Join(ts, " and "))
		}
	}
	types := scalars(get(s, "type"))
	if c := get(s, "const"); c != nil {
		parts = append(parts, "<code>"+template.HTMLEscapeString(strconv.Quote(c.Value))+"</code>")
		types = nil
	}
	if len(types) > 0 {
		t := template.HTMLEscapeString(strings.Join(types, " | "))
		if slices.Contains(types, "array") {
			if items := get(s, "items"); items != nil {
				t = strings.Replace(t, "array", "array of "+string(d.typeAt(items, depth)), 1)
			}
		}
		parts = append(parts, t)
	}
	if enum := scalars(get(s, "enum")); enum != nil {
		var vs []string
		for _, v := range enum {
			vs = append(vs, "<code>"+template.HTMLEscapeString(v)+"</code>")
		}
		parts = append(parts, "one of "+strings.Join(vs, ", "))
	}
	if f := str(s, "format"); f != "" {
		parts = append(parts, "format "+template.HTMLEscapeString(f))
	}
	if p := str(s, "pattern"); p != "" {
		parts = append(parts, "matching <code>"+template.HTMLEscapeString(p)+"</code>")
	}
	for _, b := range []struct{ lo, hi, unit string }{{"minLength", "maxLength", " characters"}, {"minimum", "maximum", ""}, {"minItems", "maxItems", " items"}} {
		lo, hi := str(s, b.lo), str(s, b.hi)
		switch {
		case lo != "" && hi != "":
			parts = append(parts, template.HTMLEscapeString(lo+".."+hi+b.unit))
		case lo != "":
			parts = append(parts, template.HTMLEscapeString("at least "+lo+b.unit))
		case hi != "":
			parts = append(parts, template.HTMLEscapeString("at most "+hi+b.unit))
		}
	}
	if props := pairs(get(s, "properties")); props != nil && depth < 2 {
		// An inline object (a list answer, a nested member): show its shape.
		required := scalars(get(s, "required"))
		var ms []string
		for _, pp := range props {
			m := "<code>" + template.HTMLEscapeString(pp[0].Value) + "</code>"
			if !slices.Contains(required, pp[0].Value) {
				m += "?"
			}
			ms = append(ms, m+": "+string(d.typeAt(pp[1], depth+1)))
		}
		parts = append(parts, "{"+strings.Join(ms, ", ")+"}")
	} else if str(s, "additionalProperties") == "false" || str(s, "unevaluatedProperties") == "false" {
		parts = append(parts, "no other members")
	}
	return template.HTML(strings.Join(parts, ", "))
}

// fields lists an object schema's members, descending into inline objects
// (also behind a null alternative or an array) with dotted names.
func (d *docRenderer) fields(s *yaml.Node, prefix string) []docField {
	if s == nil {
		return nil
	}
	required := scalars(get(s, "required"))
	var out []docField
	for _, pp := range pairs(get(s, "properties")) {
		name, ps := pp[0].Value, pp[1]
		out = append(out, docField{
			Name: prefix + name, Required: slices.Contains(required, name),
			Type: d.fieldType(ps), Description: d.prose(str(ps, "description")),
		})
		if inner := inlineObject(ps); inner != nil {
			sub := prefix + name + "."
			if slices.Contains(scalars(get(ps, "type")), "array") {
				sub = prefix + name + "[]."
			}
			out = append(out, d.fields(inner, sub)...)
		}
	}
	return out
}

// fieldType is a member's type; an inline object's members get rows of
// their own, so it shows only "object".
func (d *docRenderer) fieldType(s *yaml.Node) template.HTML {
	if inlineObject(s) != nil {
		return d.shallowType(s)
	}
	return d.typeOf(s)
}

// inlineObject returns the object schema written inline in s (directly, as
// a oneOf alternative, or as array items), or nil.
func inlineObject(s *yaml.Node) *yaml.Node {
	candidates := []*yaml.Node{s, get(s, "items")}
	candidates = append(candidates, pairsOfSeq(get(s, "oneOf"))...)
	for _, c := range candidates {
		if c != nil && str(c, "$ref") == "" && get(c, "properties") != nil && get(c, "allOf") == nil {
			if c == s && get(s, "items") != nil {
				continue
			}
			return c
		}
	}
	return nil
}

var backticks = regexp.MustCompile("`([^`]+)`")

// prose is the package prose with every `code` span that is a problem code
// linked to its entry.
func (d *docRenderer) prose(s string) template.HTML {
	html := string(prose(s))
	return template.HTML(codeSpans.ReplaceAllStringFunc(html, func(span string) string {
		code := strings.TrimSuffix(strings.TrimPrefix(span, "<code>"), "</code>")
		if !d.codes[code] {
			return span
		}
		return `<a href="#problem-` + code + `">` + span + `</a>`
	}))
}

var codeSpans = regexp.MustCompile(`<code>[a-z_]+</code>`)

// prose turns a description into HTML: paragraphs at blank lines and
// `code` spans; everything else is escaped.
func prose(s string) template.HTML {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	var b strings.Builder
	for para := range strings.SplitSeq(s, "\n\n") {
		text := template.HTMLEscapeString(strings.Join(strings.Fields(para), " "))
		b.WriteString("<p>" + backticks.ReplaceAllString(text, "<code>$1</code>") + "</p>")
	}
	return template.HTML(b.String())
}
