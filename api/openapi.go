package api

import (
	_ "embed"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openapiYAML is the contract as OpenAPI 3.1, served at /openapi.yaml and
// rendered at /docs. Tests check that it is valid, that it names exactly the
// routes the router has, and every exchange they make against it.
//
//go:embed openapi.yaml
var openapiYAML []byte

// registerDocs serves the document and a readable page of it, both from the
// binary: no CDN, no scripts, no fonts from elsewhere. The page is rendered
// once, here.
func registerDocs(r *gin.Engine) {
	page, err := renderDocs(openapiYAML)
	if err != nil {
		// The document is embedded and rendered by the tests: this is a
		// build defect, like a template.Must.
		panic(fmt.Sprintf("api: openapi.yaml does not render: %v", err))
	}
	getAndHead(r, "/openapi.yaml", query(), func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapiYAML) })
	getAndHead(r, "/docs", query(), func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", page) })
}
