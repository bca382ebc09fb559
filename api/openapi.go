package api

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// openapiYAML is the contract as OpenAPI 3.1, served at /openapi.yaml.
//
//go:embed openapi.yaml
var openapiYAML []byte

// registerDocs serves the document and a readable page of it, both from the
// binary (no CDN, no scripts).
func registerDocs(r *gin.Engine) {
	page, err := renderDocs(openapiYAML)
	if err != nil {
		panic(fmt.Sprintf("api: openapi.yaml does not render: %v", err)) // a build defect, caught by tests
	}
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapiYAML) })
	r.GET("/docs", func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", page) })
}

// The subset of the document the page shows.
type docSpec struct {
	Info struct {
		Title        string            `yaml:"title"`
		Summary      string            `yaml:"summary"`
		Description  string            `yaml:"description"`
		ProblemCodes map[string]string `yaml:"x-problem-codes"`
	} `yaml:"info"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas    map[string]yaml.Node `yaml:"schemas"`
		Parameters map[string]yaml.Node `yaml:"parameters"`
	} `yaml:"components"`
}

type docOperation struct {
	Summary     string                `yaml:"summary"`
	Description string                `yaml:"description"`
	Security    []map[string][]string `yaml:"security"`
	Parameters  []struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	} `yaml:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema struct {
				Ref string `yaml:"$ref"`
			} `yaml:"schema"`
		} `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]yaml.Node `yaml:"responses"`
}

type docRoute struct {
	Method, Path, Summary, Description, Body string
	Auth                                     string
	Params                                   []string
	Responses                                []string
}

type docProblem struct{ Code, Text string }

type docSchema struct{ Name, YAML string }

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1,h2,h3{line-height:1.2} code,pre{font:13px ui-monospace,monospace;background:#f5f5f5}
pre{padding:.75rem;overflow:auto} .m{display:inline-block;min-width:4.5rem;font-weight:bold}
section{border-top:1px solid #ddd;padding:.5rem 0} .muted{color:#666}
</style></head><body>
<h1>{{.Title}}</h1><p>{{.Summary}}</p><pre>{{.Description}}</pre>
<p>The machine-readable document is at <a href="/openapi.yaml">/openapi.yaml</a>.</p>
<h2>Routes</h2>
{{range .Routes}}<section id="{{.Method}}-{{.Path}}"><h3><span class="m">{{.Method}}</span><code>{{.Path}}</code></h3>
<p>{{.Summary}} <span class="muted">({{.Auth}})</span></p>
{{if .Description}}<pre>{{.Description}}</pre>{{end}}
{{if .Params}}<p>Parameters: {{range .Params}}<code>{{.}}</code> {{end}}</p>{{end}}
{{if .Body}}<p>Body: <a href="#schema-{{.Body}}"><code>{{.Body}}</code></a></p>{{end}}
<p>Responses: {{range .Responses}}<code>{{.}}</code> {{end}}</p></section>
{{end}}
<h2>Problem codes</h2>
<dl>{{range .Problems}}<dt id="problem-{{.Code}}"><code>{{.Code}}</code></dt><dd>{{.Text}}</dd>{{end}}</dl>
<h2>Schemas</h2>
{{range .Schemas}}<section id="schema-{{.Name}}"><h3>{{.Name}}</h3><pre>{{.YAML}}</pre></section>{{end}}
</body></html>
`))

func renderDocs(doc []byte) ([]byte, error) {
	var spec docSpec
	if err := yaml.Unmarshal(doc, &spec); err != nil {
		return nil, err
	}
	data := struct {
		Title, Summary, Description string
		Routes                      []docRoute
		Problems                    []docProblem
		Schemas                     []docSchema
	}{Title: spec.Info.Title, Summary: spec.Info.Summary, Description: spec.Info.Description}

	paths := make([]string, 0, len(spec.Paths))
	for p := range spec.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for _, method := range []string{"get", "post", "put", "patch", "delete"} {
			node, ok := spec.Paths[p][method]
			if !ok {
				continue
			}
			var op docOperation
			if err := node.Decode(&op); err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, p, err)
			}
			rt := docRoute{Method: strings.ToUpper(method), Path: p, Summary: op.Summary, Description: op.Description,
				Auth: "Authorization: Bearer <partner API key>"}
			switch {
			case op.Security != nil && len(op.Security) == 0:
				rt.Auth = "no authentication"
			case len(op.Security) > 0 && op.Security[0]["tenantToken"] != nil:
				rt.Auth = "Authorization: Bearer <tenant app JWT>"
			}
			for _, prm := range op.Parameters {
				name := prm.Name
				if prm.Ref != "" {
					name = strings.TrimPrefix(prm.Ref, "#/components/parameters/")
				}
				rt.Params = append(rt.Params, name)
			}
			if op.RequestBody != nil {
				for _, ct := range op.RequestBody.Content {
					rt.Body = strings.TrimPrefix(ct.Schema.Ref, "#/components/schemas/")
				}
			}
			for code := range op.Responses {
				rt.Responses = append(rt.Responses, code)
			}
			sort.Strings(rt.Responses)
			data.Routes = append(data.Routes, rt)
		}
	}
	for code, text := range spec.Info.ProblemCodes {
		data.Problems = append(data.Problems, docProblem{code, text})
	}
	sort.Slice(data.Problems, func(i, j int) bool { return data.Problems[i].Code < data.Problems[j].Code })
	names := make([]string, 0, len(spec.Components.Schemas))
	for n := range spec.Components.Schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		node := spec.Components.Schemas[n]
		b, err := yaml.Marshal(&node)
		if err != nil {
			return nil, err
		}
		data.Schemas = append(data.Schemas, docSchema{n, string(b)})
	}
	var out bytes.Buffer
	if err := docsTemplate.Execute(&out, data); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
