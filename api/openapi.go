package api

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"
)

// openapiYAML is the contract as OpenAPI 3.1, served at /openapi.yaml and
// rendered at /docs. Tests check that it is valid, that it names exactly the
// routes the router has, and every exchange they make against it.
//
//go:embed openapi.yaml
var openapiYAML []byte

// The docs page: Redoc (a vendored, well-kept renderer: see redoc/README.md)
// renders /openapi.yaml in the browser; the problem codes follow it, one
// anchor each, since every problem document's type links to its code.
var (
	//go:embed docs.html
	docsHTML string
	//go:embed redoc/redoc.standalone.js
	redocJS []byte
)

type problemCode struct{ Code, Text string }

// docsPage renders the page's problem codes from the document.
func docsPage(doc []byte) ([]byte, error) {
	var spec struct {
		Info struct {
			ProblemCodes map[string]string `yaml:"x-problem-codes"`
		} `yaml:"info"`
	}
	if err := yaml.Unmarshal(doc, &spec); err != nil {
		return nil, err
	}
	codes := make([]problemCode, 0, len(spec.Info.ProblemCodes))
	for c, text := range spec.Info.ProblemCodes {
		codes = append(codes, problemCode{c, text})
	}
	slices.SortFunc(codes, func(a, b problemCode) int {
		if a.Code < b.Code {
			return -1
		}
		return 1
	})
	var buf bytes.Buffer
	if err := template.Must(template.New("docs").Parse(docsHTML)).Execute(&buf, codes); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// registerDocs serves the document, the page that renders it and the
// renderer, all from the binary (no CDN), and sends / to the page.
func registerDocs(r *gin.Engine) {
	page, err := docsPage(openapiYAML)
	if err != nil {
		// The document is embedded and rendered by the tests: this is a
		// build defect, like a template.Must.
		panic(fmt.Sprintf("api: openapi.yaml does not render: %v", err))
	}
	getAndHead(r, "/openapi.yaml", query(), func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapiYAML) })
	getAndHead(r, "/docs", query(), func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", page) })
	getAndHead(r, "/docs/redoc.standalone.js", query(), func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=86400")
		c.Data(http.StatusOK, "text/javascript; charset=utf-8", redocJS)
	})
	getAndHead(r, "/", query(), func(c *gin.Context) { c.Redirect(http.StatusFound, "/docs") })
}
